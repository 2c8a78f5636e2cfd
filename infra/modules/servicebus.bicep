// Service Bus: the classification queue (claim-check messages, one per image) and the webhook delivery queue.
param name string
param location string
param tags object

resource namespace 'Microsoft.ServiceBus/namespaces@2024-01-01' = {
  name: name
  location: location
  tags: tags
  sku: { name: 'Standard', tier: 'Standard' } // duplicate detection needs Standard
  properties: {
    disableLocalAuth: true // Entra identities only: no SAS keys
    minimumTlsVersion: '1.2'
  }
}

resource classify 'Microsoft.ServiceBus/namespaces/queues@2024-01-01' = {
  parent: namespace
  name: 'classify'
  properties: {
    lockDuration: 'PT1M' // classifying an image's cells takes well under a second; the consumer renews the lock for up to 5 min
    // Above Leuko:MaxAttempts (5), which the stage enforces: it dead-letters and fails the image at the 5th delivery. Retries
    // are scheduled copies that carry the count, so the broker's own count only grows when a lock lapses (a host died);
    // were it equal to MaxAttempts, the broker would dead-letter a message at its last delivery before the image is failed.
    maxDeliveryCount: 10
    deadLetteringOnMessageExpiration: true
    requiresDuplicateDetection: true // MessageId = image id and blob version: a replayed segmentation sends nothing new
    duplicateDetectionHistoryTimeWindow: 'PT1H'
    defaultMessageTimeToLive: 'P7D'
  }
}

resource webhooks 'Microsoft.ServiceBus/namespaces/queues@2024-01-01' = {
  parent: namespace
  name: 'webhooks'
  properties: {
    lockDuration: 'PT1M' // one attempt is at most 10 s
    maxDeliveryCount: 10 // retries are scheduled as new messages; this only bounds crashes mid-attempt
    deadLetteringOnMessageExpiration: true
    requiresDuplicateDetection: true // MessageId = webhook id and attempt
    duplicateDetectionHistoryTimeWindow: 'PT1H'
    defaultMessageTimeToLive: 'P2D'
  }
}

output name string = namespace.name
output fullyQualifiedNamespace string = '${namespace.name}.servicebus.windows.net'
output classifyQueue string = classify.name
output webhookQueue string = webhooks.name

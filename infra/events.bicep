// The Event Grid subscriptions of the storage account's system topic (modules/eventgrid.bicep): BlobCreated in uploads/
// to ImageUploaded and in archives/ to ArchiveUploaded, through the Functions host's blob extension webhook. Deployed to
// the resource group by infra/hooks/postdeploy.sh after `azd deploy`, not by main.bicep: Event Grid validates a
// webhook when a subscription is created, and on the first provision the app still runs a placeholder image without
// the blob extension. Deploying it again (every `azd up`) updates the two subscriptions in place.
//
// An event Event Grid cannot deliver is never lost silently: it is retried (retryPolicy, Event Grid's back-off: 10 s,
// 30 s, 1 min, 5 min, 10 min, 30 min, 1 h, then hourly) and, once its attempts or its time to live are spent, written
// as JSON to the dead-letter container by the topic's own identity. infra/hooks/replay-deadletters.sh re-posts those.
param systemTopicName string
param storageName string
param deadLetterContainer string = 'deadletters'

@description('The function app\'s base URL (FUNCTION_APP_URL), https://...')
param functionAppUrl string

@secure()
@description('The Functions host\'s blobs_extension system key (the container app secret blobs-extension-key).')
param blobsExtensionKey string

// Event Grid's own maxima: an upload waits out a cold start (the app scales from zero replicas), a failed deployment
// or an outage of up to a day before it is dead-lettered.
var retryPolicy = { maxDeliveryAttempts: 30, eventTimeToLiveInMinutes: 1440 }

var subscriptions = [
  { container: 'uploads', function: 'ImageUploaded' }
  { container: 'archives', function: 'ArchiveUploaded' }
]

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: storageName
}

resource topic 'Microsoft.EventGrid/systemTopics@2022-06-15' existing = {
  name: systemTopicName
}

resource blobCreated 'Microsoft.EventGrid/systemTopics/eventSubscriptions@2022-06-15' = [for s in subscriptions: {
  parent: topic
  name: '${s.container}-blob-created'
  properties: {
    destination: {
      endpointType: 'WebHook'
      properties: {
        // Built from the @secure() key; the linter cannot see through the interpolation.
        #disable-next-line use-secure-value-for-secure-inputs
        endpointUrl: '${functionAppUrl}/runtime/webhooks/blobs?functionName=Host.Functions.${s.function}&code=${blobsExtensionKey}'
        maxEventsPerBatch: 1
      }
    }
    eventDeliverySchema: 'EventGridSchema'
    filter: {
      includedEventTypes: [ 'Microsoft.Storage.BlobCreated' ]
      subjectBeginsWith: '/blobServices/default/containers/${s.container}/'
    }
    retryPolicy: retryPolicy
    // With the topic's system-assigned identity (Storage Blob Data Contributor on this container only): the account
    // allows no shared key.
    deadLetterWithResourceIdentity: {
      identity: { type: 'SystemAssigned' }
      deadLetterDestination: {
        endpointType: 'StorageBlob'
        properties: { resourceId: storage.id, blobContainerName: deadLetterContainer }
      }
    }
  }
}]

output subscriptions array = [for (s, i) in subscriptions: blobCreated[i].name]

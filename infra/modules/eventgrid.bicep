// The storage account's Event Grid system topic. Its subscriptions (BlobCreated in uploads/ and archives/ to the
// Functions host's blob extension webhook) are infra/events.bicep, deployed by infra/hooks/postdeploy.sh: Event Grid
// validates the endpoint when a subscription is created, which needs the deployed app (the first provision runs a
// placeholder image). The topic's own identity writes undeliverable events to the dead-letter container (role in
// modules/roles.bicep).
param name string
param location string
param tags object
param storageName string

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: storageName
}

resource topic 'Microsoft.EventGrid/systemTopics@2022-06-15' = {
  name: name
  location: location
  tags: tags
  identity: { type: 'SystemAssigned' }
  properties: {
    source: storage.id
    topicType: 'Microsoft.Storage.StorageAccounts'
  }
}

output systemTopicName string = topic.name
output principalId string = topic.identity.principalId

// The storage account: blobs (uploads, archives, crops, batches, deployment, and Event Grid's dead letters), tables
// (results, webhooks) and the Functions host's own state. Shared-key access is off: only Entra identities reach the data.
param name string
param location string
param tags object

// Event Grid writes the upload events it could not deliver here (infra/events.bicep); infra/hooks/replay-deadletters.sh replays them.
var deadLetterContainer = 'deadletters'
var containers = [ 'uploads', 'archives', 'crops', 'batches', 'deployment', deadLetterContainer ]
var tables = [ 'images', 'cells', 'batches', 'batchimages', 'receipts', 'webhooks', 'webhookdeliveries', 'reviews' ]

resource account 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  name: name
  location: location
  tags: tags
  kind: 'StorageV2'
  sku: { name: 'Standard_LRS' }
  properties: {
    allowSharedKeyAccess: false
    allowBlobPublicAccess: false
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
    defaultToOAuthAuthentication: true
  }
}

resource blobs 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' = {
  parent: account
  name: 'default'
}

resource blobContainers 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = [for c in containers: {
  parent: blobs
  name: c
}]

// Declared (it exists anyway) so that its diagnostic setting has a parent: the Functions host's blob-trigger queues live here.
resource queueService 'Microsoft.Storage/storageAccounts/queueServices@2023-05-01' = {
  parent: account
  name: 'default'
}

resource tableService 'Microsoft.Storage/storageAccounts/tableServices@2023-05-01' = {
  parent: account
  name: 'default'
}

resource resultTables 'Microsoft.Storage/storageAccounts/tableServices/tables@2023-05-01' = [for t in tables: {
  parent: tableService
  name: t
}]

output name string = account.name
output id string = account.id
output deadLetterContainer string = blobContainers[indexOf(containers, deadLetterContainer)].name

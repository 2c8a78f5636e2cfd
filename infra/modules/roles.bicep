// Every role assignment of the deployment, each the least-privileged built-in role at the narrowest scope that works,
// with why. Names are guid(scope, principal, role): deploying again changes nothing. infra tests check each role
// definition id and scope here against this list, so a change to one is a change to both.
param principalId string // the app's identity (code and Functions host)
param scalerPrincipalId string // the KEDA scale rules' identity
param eventGridPrincipalId string // the Event Grid system topic's identity
param storageName string
param deadLetterContainer string
param serviceBusName string
param queues array
param registryName string
param appInsightsName string
param keyVaultName string
param kekName string // the key-encryption key of the webhook signing secrets (webhook-secrets)

var roles = {
  storageBlobDataContributor: 'ba92f5b4-2d11-453d-a403-e96b0029c9fe'
  storageQueueDataContributor: '974c5e8b-45b9-4653-ba55-5f855dd0fb88'
  storageTableDataContributor: '0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3'
  serviceBusDataSender: '69a216fc-b8fb-44d8-bc22-1f3c2cd27a39'
  serviceBusDataReceiver: '4f6d3b9b-027b-4f4c-9142-0e5a2a2247e0'
  serviceBusDataOwner: '090c5cfd-751d-490a-894a-3ce6f1109419'
  acrPull: '7f951dda-4ed3-4680-a7ca-43fe172d538d'
  monitoringMetricsPublisher: '3913510d-42f4-4e42-8a64-420c390055eb'
  keyVaultCryptoServiceEncryptionUser: 'e147488a-f6f5-4113-8e2d-b22465e65bf6'
}

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: storageName

  resource blobService 'blobServices' existing = {
    name: 'default'

    resource deadLetters 'containers' existing = {
      name: deadLetterContainer
    }
  }
}

resource serviceBus 'Microsoft.ServiceBus/namespaces@2024-01-01' existing = {
  name: serviceBusName
}

resource queue 'Microsoft.ServiceBus/namespaces/queues@2024-01-01' existing = [for q in queues: {
  parent: serviceBus
  name: q
}]

resource registry 'Microsoft.ContainerRegistry/registries@2023-07-01' existing = {
  name: registryName
}

resource insights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: appInsightsName
}

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' existing = {
  name: keyVaultName

  resource kek 'keys' existing = {
    name: kekName
  }
}

// Storage, account scope. Blob Data Contributor, not Owner: the app and the Functions host read, write and delete
// blobs and create containers (the host's azure-webjobs-hosts with its blob leases and receipts; the app's
// CreateIfNotExists), all in Contributor; Owner adds only POSIX ACLs and ownership (Data Lake), which nothing here
// uses, and host secrets are files (AzureWebJobsSecretStorageType=files), not blobs. Account scope, because the host
// names its containers itself.
resource blobs 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(storage.id, principalId, roles.storageBlobDataContributor)
  scope: storage
  properties: {
    principalId: principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageBlobDataContributor)
  }
}

// Queue Data Contributor, account scope: the Functions host's blob trigger keeps its work items and poison messages
// in queues it creates and names per host (azure-webjobs-blobtrigger-*, webjobs-blobtrigger-poison).
resource storageQueues 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(storage.id, principalId, roles.storageQueueDataContributor)
  scope: storage
  properties: {
    principalId: principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageQueueDataContributor)
  }
}

// Table Data Contributor, account scope: the app reads and writes its seven tables and creates them if missing
// (CreateTableIfNotExists is an operation on the table service, which a table-scoped assignment does not allow).
resource tables 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(storage.id, principalId, roles.storageTableDataContributor)
  scope: storage
  properties: {
    principalId: principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageTableDataContributor)
  }
}

// Service Bus, queue scope (classify and webhooks), not the namespace: the app sends to and receives from exactly
// these two queues (their dead-letter sub-queues included) and nothing else. Sender and Receiver, not Owner: it never
// manages entities.
resource queueSend 'Microsoft.Authorization/roleAssignments@2022-04-01' = [for (q, i) in queues: {
  name: guid(queue[i].id, principalId, roles.serviceBusDataSender)
  scope: queue[i]
  properties: {
    principalId: principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.serviceBusDataSender)
  }
}]

resource queueReceive 'Microsoft.Authorization/roleAssignments@2022-04-01' = [for (q, i) in queues: {
  name: guid(queue[i].id, principalId, roles.serviceBusDataReceiver)
  scope: queue[i]
  properties: {
    principalId: principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.serviceBusDataReceiver)
  }
}]

// The KEDA azure-servicebus scaler reads a queue's runtime properties (its active message count) through the Service
// Bus administration API, which needs the Manage right: KEDA documents "Manage access is required for KEDA to be able
// to get metrics from Service Bus", and with Entra ID, Azure Service Bus Data Owner is the only built-in role that
// grants Manage (Sender and Receiver do not: with them the rule never sees a message and minReplicas 0 stays at 0).
// Held by the scaler's own identity, at the scope of each queue it watches, so it manages nothing else.
resource scalerQueueOwner 'Microsoft.Authorization/roleAssignments@2022-04-01' = [for (q, i) in queues: {
  name: guid(queue[i].id, scalerPrincipalId, roles.serviceBusDataOwner)
  scope: queue[i]
  properties: {
    principalId: scalerPrincipalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.serviceBusDataOwner)
  }
}]

// AcrPull on the registry: the container app pulls its image with the identity (the registry has no admin user).
resource pull 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(registry.id, principalId, roles.acrPull)
  scope: registry
  properties: {
    principalId: principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.acrPull)
  }
}

// Monitoring Metrics Publisher on the Application Insights component: it publishes all telemetry (not only metrics)
// and is the role Entra-authenticated ingestion requires, since the component's local auth is off.
resource telemetry 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(insights.id, principalId, roles.monitoringMetricsPublisher)
  scope: insights
  properties: {
    principalId: principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.monitoringMetricsPublisher)
  }
}

// Key Vault Crypto Service Encryption User on the webhook-secrets key only (not the vault): read the key's metadata
// and wrap and unwrap with it, nothing else. Not Crypto User (adds encrypt, decrypt, sign, verify), not Crypto
// Officer (manages keys): envelope encryption only wraps data keys. A rotation creates a new version of this same
// key, so the assignment covers it.
resource secretsKeyWrap 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(vault::kek.id, principalId, roles.keyVaultCryptoServiceEncryptionUser)
  scope: vault::kek
  properties: {
    principalId: principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.keyVaultCryptoServiceEncryptionUser)
  }
}

// Event Grid's system topic writes the events it could not deliver as blobs into the dead-letter container: Blob Data
// Contributor (write) on that container only, so it can read or change no upload.
resource deadLetterWrite 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(storage::blobService::deadLetters.id, eventGridPrincipalId, roles.storageBlobDataContributor)
  scope: storage::blobService::deadLetters
  properties: {
    principalId: eventGridPrincipalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageBlobDataContributor)
  }
}

// Diagnostic settings: every resource family's logs and metrics to the one Log Analytics workspace, so that an access
// denied (a 403 in StorageBlobLogs, a Key Vault AuditEvent), a broker error or an undeliverable upload event can be
// queried beside the app's own traces. Categories are named rather than grouped where a group would include ones the
// tier lacks (Service Bus Standard has no runtime audit logs).
param logAnalyticsName string
param storageName string
param serviceBusName string
param keyVaultName string
param systemTopicName string
param environmentName string
param appName string

var settingName = 'to-log-analytics'
var storageLogs = [
  { category: 'StorageRead', enabled: true }
  { category: 'StorageWrite', enabled: true }
  { category: 'StorageDelete', enabled: true }
]
var storageMetrics = [ { category: 'Transaction', enabled: true } ]
var allMetrics = [ { category: 'AllMetrics', enabled: true } ]

resource logs 'Microsoft.OperationalInsights/workspaces@2023-09-01' existing = {
  name: logAnalyticsName
}

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: storageName

  resource blobService 'blobServices' existing = {
    name: 'default'
  }

  resource queueService 'queueServices' existing = {
    name: 'default'
  }

  resource tableService 'tableServices' existing = {
    name: 'default'
  }
}

resource serviceBus 'Microsoft.ServiceBus/namespaces@2024-01-01' existing = {
  name: serviceBusName
}

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' existing = {
  name: keyVaultName
}

resource topic 'Microsoft.EventGrid/systemTopics@2022-06-15' existing = {
  name: systemTopicName
}

resource environment 'Microsoft.App/managedEnvironments@2025-01-01' existing = {
  name: environmentName
}

resource app 'Microsoft.App/containerApps@2025-01-01' existing = {
  name: appName
}

// Storage: the account has metrics only; each service (blob, queue, table) has its own read, write and delete logs.
resource storageAccountDiagnostics 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: settingName
  scope: storage
  properties: { workspaceId: logs.id, metrics: storageMetrics }
}

resource blobDiagnostics 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: settingName
  scope: storage::blobService
  properties: { workspaceId: logs.id, logs: storageLogs, metrics: storageMetrics }
}

resource queueDiagnostics 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: settingName
  scope: storage::queueService
  properties: { workspaceId: logs.id, logs: storageLogs, metrics: storageMetrics }
}

resource tableDiagnostics 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: settingName
  scope: storage::tableService
  properties: { workspaceId: logs.id, logs: storageLogs, metrics: storageMetrics }
}

resource serviceBusDiagnostics 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: settingName
  scope: serviceBus
  properties: { workspaceId: logs.id, logs: [ { category: 'OperationalLogs', enabled: true } ], metrics: allMetrics }
}

resource keyVaultDiagnostics 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: settingName
  scope: vault
  properties: { workspaceId: logs.id, logs: [ { category: 'AuditEvent', enabled: true } ], metrics: allMetrics }
}

// DeliveryFailures: every failed attempt to deliver an upload event, before it is retried or dead-lettered.
resource eventGridDiagnostics 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: settingName
  scope: topic
  properties: { workspaceId: logs.id, logs: [ { category: 'DeliveryFailures', enabled: true } ], metrics: allMetrics }
}

// The environment's console and system logs (the app's stdout, replica starts, scale decisions and KEDA scaler errors).
resource environmentDiagnostics 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: settingName
  scope: environment
  properties: {
    workspaceId: logs.id
    logs: [
      { category: 'ContainerAppConsoleLogs', enabled: true }
      { category: 'ContainerAppSystemLogs', enabled: true }
    ]
    metrics: allMetrics
  }
}

// The container app itself has metrics only (replicas, requests, CPU); its logs are the environment's.
resource appDiagnostics 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: settingName
  scope: app
  properties: { workspaceId: logs.id, metrics: allMetrics }
}

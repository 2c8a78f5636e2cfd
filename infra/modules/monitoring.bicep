// Log Analytics and Application Insights (traces of the pipeline stages, the Functions host and the container logs).
param resourceToken string
param location string
param tags object

resource logs 'Microsoft.OperationalInsights/workspaces@2023-09-01' = {
  name: 'log-${resourceToken}'
  location: location
  tags: tags
  properties: {
    sku: { name: 'PerGB2018' }
    retentionInDays: 30
  }
}

resource insights 'Microsoft.Insights/components@2020-02-02' = {
  name: 'appi-${resourceToken}'
  location: location
  tags: tags
  kind: 'web'
  properties: {
    Application_Type: 'web'
    WorkspaceResourceId: logs.id
    DisableLocalAuth: true // telemetry is sent with the managed identity (Monitoring Metrics Publisher)
  }
}

output logAnalyticsName string = logs.name
output appInsightsName string = insights.name
output appInsightsConnectionString string = insights.properties.ConnectionString

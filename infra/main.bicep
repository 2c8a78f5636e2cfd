// LeukoFunctions on Azure: one `azd up`. Subscription scope: the resource group, then every resource in modules/.
targetScope = 'subscription'

@minLength(1)
@maxLength(64)
@description('Name of the azd environment; names and tags derive from it.')
param environmentName string

@minLength(1)
@description('Azure region for every resource.')
param location string

@description('Container image of the function app; azd sets it on deploy (a public placeholder until then).')
param functionImage string = 'mcr.microsoft.com/azure-functions/dotnet-isolated:4-dotnet-isolated8.0'

@secure()
@description('The Functions host\'s blobs_extension system key (the Event Grid webhook\'s code); generated once per deployment unless given.')
param blobsExtensionKey string = newGuid()

@secure()
@description('The Functions host\'s master key; generated unless given.')
param hostMasterKey string = newGuid()

@description('Most replicas of the function app (classification and webhook senders scale out with their queues up to this).')
@minValue(1)
@maxValue(30)
param maxReplicas int = 10

var resourceToken = toLower(uniqueString(subscription().id, environmentName, location))
var tags = { 'azd-env-name': environmentName }
var appName = 'func-${resourceToken}'

resource rg 'Microsoft.Resources/resourceGroups@2024-03-01' = {
  name: 'rg-${environmentName}'
  location: location
  tags: tags
}

module identity 'modules/identity.bicep' = {
  scope: rg
  params: { name: 'id-${resourceToken}', location: location, tags: tags }
}

module monitoring 'modules/monitoring.bicep' = {
  scope: rg
  params: { resourceToken: resourceToken, location: location, tags: tags }
}

module storage 'modules/storage.bicep' = {
  scope: rg
  params: { name: 'st${resourceToken}', location: location, tags: tags }
}

module serviceBus 'modules/servicebus.bicep' = {
  scope: rg
  params: { name: 'sb-${resourceToken}', location: location, tags: tags }
}

module registry 'modules/registry.bicep' = {
  scope: rg
  params: { name: 'cr${resourceToken}', location: location, tags: tags }
}

module roles 'modules/roles.bicep' = {
  scope: rg
  params: {
    principalId: identity.outputs.principalId
    storageName: storage.outputs.name
    serviceBusName: serviceBus.outputs.name
    registryName: registry.outputs.name
    appInsightsName: monitoring.outputs.appInsightsName
  }
}

module app 'modules/functionapp.bicep' = {
  scope: rg
  dependsOn: [ roles ]
  params: {
    name: appName
    location: location
    tags: union(tags, { 'azd-service-name': 'functions' })
    image: functionImage
    identityId: identity.outputs.id
    identityClientId: identity.outputs.clientId
    logAnalyticsName: monitoring.outputs.logAnalyticsName
    appInsightsConnectionString: monitoring.outputs.appInsightsConnectionString
    storageName: storage.outputs.name
    serviceBusNamespace: serviceBus.outputs.fullyQualifiedNamespace
    classifyQueue: serviceBus.outputs.classifyQueue
    webhookQueue: serviceBus.outputs.webhookQueue
    registryServer: registry.outputs.loginServer
    blobsExtensionKey: blobsExtensionKey
    hostMasterKey: hostMasterKey
    maxReplicas: maxReplicas
  }
}

module events 'modules/eventgrid.bicep' = {
  scope: rg
  params: { name: 'evgt-${resourceToken}', location: location, tags: tags, storageName: storage.outputs.name }
}

// azd turns these into environment variables (azd env get-values) for the hooks and for you.
output AZURE_LOCATION string = location
output AZURE_RESOURCE_GROUP string = rg.name
output AZURE_CONTAINER_REGISTRY_ENDPOINT string = registry.outputs.loginServer
output AZURE_STORAGE_ACCOUNT string = storage.outputs.name
output AZURE_SERVICEBUS_NAMESPACE string = serviceBus.outputs.fullyQualifiedNamespace
output AZURE_EVENTGRID_SYSTEM_TOPIC string = events.outputs.systemTopicName
output FUNCTION_APP_NAME string = app.outputs.name
output FUNCTION_APP_URL string = app.outputs.url

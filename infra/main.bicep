// LeukoFunctions on Azure: one `azd up`. Subscription scope: the resource group, then every resource in modules/.
// A second `azd up` changes nothing that clients hold: every key below is a parameter without a default that azd
// generates once (@metadata azd type 'generate') and keeps in the environment (.azure/ENV/config.json,
// infra.parameters.*), so it passes the same value on every provision. Never give these a newGuid() default: ARM
// evaluates it on every deployment, which rotates the key and locks every client out.
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

// Key values: letters and digits only, as they travel in a URL query (`code=`) and in headers.
@secure()
@metadata({ azd: { type: 'generate', config: { length: 48, noSpecial: true } } })
@minLength(32)
@description('The LIMS client\'s function key (roles read, subscribe).')
param limsApiKey string

@secure()
@metadata({ azd: { type: 'generate', config: { length: 48, noSpecial: true } } })
@minLength(32)
@description('The uploaders\' function key (roles submit, read).')
param uploaderApiKey string

@secure()
@metadata({ azd: { type: 'generate', config: { length: 48, noSpecial: true } } })
@minLength(32)
@description('The reviewers\' function key (roles read, review).')
param reviewerApiKey string

@secure()
@metadata({ azd: { type: 'generate', config: { length: 48, noSpecial: true } } })
@minLength(32)
@description('The administrators\' function key (role admin).')
param adminApiKey string

@secure()
@metadata({ azd: { type: 'generate', config: { length: 48, noSpecial: true } } })
@minLength(32)
@description('The Functions host\'s master key: the host needs one; no client is given it and the app refuses it.')
param hostMasterKey string

@secure()
@metadata({ azd: { type: 'generate', config: { length: 48, noSpecial: true } } })
@minLength(32)
@description('The Functions host\'s blobs_extension system key: the code of the Event Grid webhook (infra/events.bicep).')
param blobsExtensionKey string

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
  params: { name: 'id-${resourceToken}', scalerName: 'id-scale-${resourceToken}', location: location, tags: tags }
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

module keyVault 'modules/keyvault.bicep' = {
  scope: rg
  params: { name: 'kv-${resourceToken}', location: location, tags: tags }
}

module events 'modules/eventgrid.bicep' = {
  scope: rg
  params: { name: 'evgt-${resourceToken}', location: location, tags: tags, storageName: storage.outputs.name }
}

module roles 'modules/roles.bicep' = {
  scope: rg
  params: {
    principalId: identity.outputs.principalId
    scalerPrincipalId: identity.outputs.scalerPrincipalId
    eventGridPrincipalId: events.outputs.principalId
    storageName: storage.outputs.name
    deadLetterContainer: storage.outputs.deadLetterContainer
    serviceBusName: serviceBus.outputs.name
    queues: [ serviceBus.outputs.classifyQueue, serviceBus.outputs.webhookQueue ]
    registryName: registry.outputs.name
    appInsightsName: monitoring.outputs.appInsightsName
    keyVaultName: keyVault.outputs.name
    kekName: keyVault.outputs.keyName
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
    scalerIdentityId: identity.outputs.scalerId
    appInsightsConnectionString: monitoring.outputs.appInsightsConnectionString
    storageName: storage.outputs.name
    serviceBusNamespace: serviceBus.outputs.fullyQualifiedNamespace
    classifyQueue: serviceBus.outputs.classifyQueue
    webhookQueue: serviceBus.outputs.webhookQueue
    registryServer: registry.outputs.loginServer
    kekUri: keyVault.outputs.keyUri
    limsApiKey: limsApiKey
    uploaderApiKey: uploaderApiKey
    reviewerApiKey: reviewerApiKey
    adminApiKey: adminApiKey
    blobsExtensionKey: blobsExtensionKey
    hostMasterKey: hostMasterKey
    maxReplicas: maxReplicas
  }
}

module diagnostics 'modules/diagnostics.bicep' = {
  scope: rg
  params: {
    logAnalyticsName: monitoring.outputs.logAnalyticsName
    storageName: storage.outputs.name
    serviceBusName: serviceBus.outputs.name
    keyVaultName: keyVault.outputs.name
    systemTopicName: events.outputs.systemTopicName
    environmentName: app.outputs.environmentName
    appName: app.outputs.name
  }
}

// azd turns these into environment variables (azd env get-values) for the hooks and for you. No key is an output.
output AZURE_LOCATION string = location
output AZURE_RESOURCE_GROUP string = rg.name
output AZURE_CONTAINER_REGISTRY_ENDPOINT string = registry.outputs.loginServer
output AZURE_STORAGE_ACCOUNT string = storage.outputs.name
output AZURE_DEADLETTER_CONTAINER string = storage.outputs.deadLetterContainer
output AZURE_SERVICEBUS_NAMESPACE string = serviceBus.outputs.fullyQualifiedNamespace
output AZURE_EVENTGRID_SYSTEM_TOPIC string = events.outputs.systemTopicName
output AZURE_KEY_VAULT_NAME string = keyVault.outputs.name
output LEUKO_SECRETS_KEY_URI string = keyVault.outputs.keyUri
output FUNCTION_APP_NAME string = app.outputs.name
output FUNCTION_APP_URL string = app.outputs.url

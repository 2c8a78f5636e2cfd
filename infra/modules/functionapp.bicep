// The function app as an Azure Container App running the Functions container image (Dockerfile): OpenCV's native
// runtime needs libgtk-3, which the Consumption and Flex Consumption images lack. Container Apps scale it on HTTP
// requests and, through KEDA scale rules read with the managed identity, on the depth of the classification and
// webhook queues (their consumers are hosted services of the app, not Functions triggers).
param name string
param location string
param tags object
param image string
param identityId string
param identityClientId string
param logAnalyticsName string
param appInsightsConnectionString string
param storageName string
param serviceBusNamespace string
param classifyQueue string
param webhookQueue string
param registryServer string
@secure()
param blobsExtensionKey string
@secure()
param hostMasterKey string
param maxReplicas int

resource logs 'Microsoft.OperationalInsights/workspaces@2023-09-01' existing = {
  name: logAnalyticsName
}

resource environment 'Microsoft.App/managedEnvironments@2025-01-01' = {
  name: 'cae-${name}'
  location: location
  tags: tags
  properties: {
    appLogsConfiguration: {
      destination: 'log-analytics'
      logAnalyticsConfiguration: {
        customerId: logs.properties.customerId
        sharedKey: logs.listKeys().primarySharedKey
      }
    }
  }
}

// The Functions host reads its keys from a file (AzureWebJobsSecretStorageType=files): the blobs_extension key is
// the code of the Event Grid webhook that infra/hooks/postdeploy.sh subscribes.
var hostSecrets = {
  masterKey: { name: 'master', value: hostMasterKey, encrypted: false }
  functionKeys: []
  systemKeys: [ { name: 'blobs_extension', value: blobsExtensionKey, encrypted: false } ]
}

resource app 'Microsoft.App/containerApps@2025-01-01' = {
  name: name
  location: location
  tags: tags
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: { '${identityId}': {} }
  }
  properties: {
    managedEnvironmentId: environment.id
    configuration: {
      ingress: {
        external: true
        targetPort: 80
        transport: 'auto'
      }
      registries: [ { server: registryServer, identity: identityId } ]
      secrets: [
        // Built only from the two @secure() keys above; the linter cannot see through string().
        #disable-next-line use-secure-value-for-secure-inputs
        { name: 'host-secrets', value: string(hostSecrets) }
        { name: 'blobs-extension-key', value: blobsExtensionKey }
      ]
    }
    template: {
      containers: [
        {
          name: 'functions'
          image: image
          resources: { cpu: json('2.0'), memory: '4Gi' }
          env: [
            { name: 'FUNCTIONS_WORKER_RUNTIME', value: 'dotnet-isolated' }
            { name: 'FUNCTIONS_EXTENSION_VERSION', value: '~4' }
            { name: 'AzureFunctionsWebHost__hostid', value: take(name, 32) }
            { name: 'AzureWebJobsSecretStorageType', value: 'files' }
            { name: 'AzureWebJobsStorage__accountName', value: storageName }
            { name: 'AzureWebJobsStorage__credential', value: 'managedidentity' }
            { name: 'AzureWebJobsStorage__clientId', value: identityClientId }
            { name: 'APPLICATIONINSIGHTS_CONNECTION_STRING', value: appInsightsConnectionString }
            { name: 'APPLICATIONINSIGHTS_AUTHENTICATION_STRING', value: 'ClientId=${identityClientId};Authorization=AAD' }
            { name: 'Leuko__Transport', value: 'service-bus' }
            { name: 'Leuko__ServiceBusNamespace', value: serviceBusNamespace }
            { name: 'Leuko__ManagedIdentityClientId', value: identityClientId }
            { name: 'Leuko__Queue', value: classifyQueue }
            { name: 'Leuko__WebhookQueue', value: webhookQueue }
            { name: 'Leuko__PublicApiUrl', value: 'https://${name}.${environment.properties.defaultDomain}/api' }
          ]
          volumeMounts: [ { volumeName: 'host-secrets', mountPath: '/azure-functions-host/Secrets' } ]
        }
      ]
      volumes: [
        {
          name: 'host-secrets'
          storageType: 'Secret'
          secrets: [ { secretRef: 'host-secrets', path: 'host.json' } ]
        }
      ]
      scale: {
        minReplicas: 0
        maxReplicas: maxReplicas
        rules: [
          { name: 'http', http: { metadata: { concurrentRequests: '20' } } }
          {
            name: 'classify-queue'
            custom: {
              type: 'azure-servicebus'
              metadata: { namespace: split(serviceBusNamespace, '.')[0], queueName: classifyQueue, messageCount: '20' }
              identity: identityId
            }
          }
          {
            name: 'webhook-queue'
            custom: {
              type: 'azure-servicebus'
              metadata: { namespace: split(serviceBusNamespace, '.')[0], queueName: webhookQueue, messageCount: '50' }
              identity: identityId
            }
          }
        ]
      }
    }
  }
}

output name string = app.name
output url string = 'https://${app.properties.configuration.ingress.fqdn}'

// The function app as an Azure Container App running the Functions container image (Dockerfile): OpenCV's native
// runtime needs libgtk-3, which the Consumption and Flex Consumption images lack. Container Apps scale it on HTTP
// requests and, through KEDA scale rules read with the scaler's identity, on the depth of the classification and
// webhook queues (their consumers are hosted services of the app, not Functions triggers).
param name string
param location string
param tags object
param image string
param identityId string
param identityClientId string
param scalerIdentityId string
param appInsightsConnectionString string
param storageName string
param serviceBusNamespace string
param classifyQueue string
param webhookQueue string
param registryServer string
@description('Versionless URI of the key-encryption key of the webhook signing secrets (Key Vault).')
param kekUri string
@secure()
param limsApiKey string
@secure()
param uploaderApiKey string
@secure()
param reviewerApiKey string
@secure()
param adminApiKey string
@secure()
param blobsExtensionKey string
@secure()
param hostMasterKey string
param maxReplicas int

// The Functions host reads its keys from this file (AzureWebJobsSecretStorageType=files), and the app resolves the
// calling client from the same file (Leuko__ApiKeysFile), so the two never disagree. One host-level function key per
// client; the master key is there because the host needs one, is given to no client, and the app refuses it. The
// blobs_extension system key is the code of the Event Grid webhook (infra/events.bicep).
var secretsDirectory = '/azure-functions-host/Secrets'
var hostSecrets = {
  masterKey: { name: 'master', value: hostMasterKey, encrypted: false }
  functionKeys: [
    { name: 'lims', value: limsApiKey, encrypted: false }
    { name: 'uploader', value: uploaderApiKey, encrypted: false }
    { name: 'reviewer', value: reviewerApiKey, encrypted: false }
    { name: 'admin', value: adminApiKey, encrypted: false }
  ]
  systemKeys: [ { name: 'blobs_extension', value: blobsExtensionKey, encrypted: false } ]
}

// Logs go through Azure Monitor, not the environment's own Log Analytics link: the diagnostic setting on the
// environment (modules/diagnostics.bicep) sends them to the workspace, with no workspace shared key in the template.
resource environment 'Microsoft.App/managedEnvironments@2025-01-01' = {
  name: 'cae-${name}'
  location: location
  tags: tags
  properties: {
    appLogsConfiguration: { destination: 'azure-monitor' }
  }
}

resource app 'Microsoft.App/containerApps@2025-01-01' = {
  name: name
  location: location
  tags: tags
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: { '${identityId}': {}, '${scalerIdentityId}': {} }
  }
  properties: {
    managedEnvironmentId: environment.id
    configuration: {
      ingress: {
        external: true
        targetPort: 8080 // the image's non-root host listens on 8080 (Dockerfile)
        transport: 'auto'
      }
      registries: [ { server: registryServer, identity: identityId } ]
      secrets: [
        // Built only from the @secure() keys above; the linter cannot see through string().
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
            // The ingress port, for every image: the app's (which sets it too, being non-root) and the public
            // placeholder of the first provision, which would otherwise listen on 80 and fail the ingress probes.
            { name: 'ASPNETCORE_URLS', value: 'http://+:8080' }
            { name: 'AzureFunctionsWebHost__hostid', value: take(name, 32) }
            { name: 'AzureWebJobsSecretStorageType', value: 'files' }
            { name: 'AzureWebJobsStorage__accountName', value: storageName }
            { name: 'AzureWebJobsStorage__credential', value: 'managedidentity' }
            { name: 'AzureWebJobsStorage__clientId', value: identityClientId }
            // Two identities are assigned (the app's and the scaler's): DefaultAzureCredential anywhere in the app
            // takes this one, never the scaler's.
            { name: 'AZURE_CLIENT_ID', value: identityClientId }
            { name: 'APPLICATIONINSIGHTS_CONNECTION_STRING', value: appInsightsConnectionString }
            { name: 'APPLICATIONINSIGHTS_AUTHENTICATION_STRING', value: 'ClientId=${identityClientId};Authorization=AAD' }
            { name: 'Leuko__Transport', value: 'service-bus' }
            { name: 'Leuko__ServiceBusNamespace', value: serviceBusNamespace }
            { name: 'Leuko__ManagedIdentityClientId', value: identityClientId }
            { name: 'Leuko__Queue', value: classifyQueue }
            { name: 'Leuko__WebhookQueue', value: webhookQueue }
            { name: 'Leuko__PublicApiUrl', value: 'https://${name}.${environment.properties.defaultDomain}/api' }
            { name: 'Leuko__ApiKeysFile', value: '/azure-functions-host/Secrets/host.json' } // the host's own key file (volume below)
            { name: 'Leuko__SecretsKeyUri', value: kekUri }
            // Roles of each API client (section Leuko:ApiClients: a function key's name to its comma-separated roles;
            // roles read, submit, subscribe, review, admin; admin implies all and sees every client's subscriptions).
            // A key whose name is not listed here (the master key included) is refused.
            { name: 'Leuko__ApiClients__lims', value: 'read,subscribe' }
            { name: 'Leuko__ApiClients__uploader', value: 'submit,read' }
            { name: 'Leuko__ApiClients__reviewer', value: 'read,review' }
            { name: 'Leuko__ApiClients__admin', value: 'admin' }
          ]
          volumeMounts: [ { volumeName: 'host-secrets', mountPath: secretsDirectory } ]
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
          // KEDA azure-servicebus with the scaler's identity, which holds Azure Service Bus Data Owner on these two
          // queues only (modules/roles.bicep): reading the active message count needs the Manage right.
          {
            name: 'classify-queue'
            custom: {
              type: 'azure-servicebus'
              metadata: { namespace: split(serviceBusNamespace, '.')[0], queueName: classifyQueue, messageCount: '20' }
              identity: scalerIdentityId
            }
          }
          {
            name: 'webhook-queue'
            custom: {
              type: 'azure-servicebus'
              metadata: { namespace: split(serviceBusNamespace, '.')[0], queueName: webhookQueue, messageCount: '50' }
              identity: scalerIdentityId
            }
          }
        ]
      }
    }
  }
}

output name string = app.name
output environmentName string = environment.name
output url string = 'https://${app.properties.configuration.ingress.fqdn}'

// The container registry: azd builds the function app's image here (remote build: no Docker engine is needed locally).
param name string
param location string
param tags object

resource registry 'Microsoft.ContainerRegistry/registries@2023-07-01' = {
  name: name
  location: location
  tags: tags
  sku: { name: 'Basic' }
  properties: {
    adminUserEnabled: false // pulled with the managed identity (AcrPull)
  }
}

output name string = registry.name
output loginServer string = registry.properties.loginServer

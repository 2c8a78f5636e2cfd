// The user-assigned managed identities: every data-plane access goes through one of them (no keys in settings).
// - the app's identity: what the code and the Functions host use (Leuko__ManagedIdentityClientId, AzureWebJobsStorage__clientId);
// - the scaler's identity: used only by the KEDA Service Bus scale rules, which need a right (Manage, to read a
//   queue's runtime properties) that the app itself never needs. Container Apps takes a scale rule's identity only
//   from the identities assigned to the app, so the container could ask for a token of it too: the split keeps the
//   app's own credential least-privileged and makes the scaler's grant a separate, auditable principal, not a wall.
param name string
param scalerName string
param location string
param tags object

resource identity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: name
  location: location
  tags: tags
}

resource scaler 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: scalerName
  location: location
  tags: tags
}

output id string = identity.id
output principalId string = identity.properties.principalId
output clientId string = identity.properties.clientId
output scalerId string = scaler.id
output scalerPrincipalId string = scaler.properties.principalId

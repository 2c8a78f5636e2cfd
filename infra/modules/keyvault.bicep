// The Key Vault holding the key-encryption key of the webhook signing secrets (envelope encryption: each secret has its
// own AES-256-GCM data key, wrapped with this RSA key; the stored secret records the key id with its version, so a
// rotation leaves older secrets readable). RBAC authorisation only (no access policies); purge protection on, so a
// deleted vault and its key can be recovered for the retention period but not destroyed, which would make every stored
// secret unreadable. The app's identity holds one role on the key itself (modules/roles.bicep).
param name string
param location string
param tags object

var keyName = 'webhook-secrets'

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' = {
  name: name
  location: location
  tags: tags
  properties: {
    tenantId: subscription().tenantId
    sku: { family: 'A', name: 'standard' }
    enableRbacAuthorization: true
    enableSoftDelete: true
    softDeleteRetentionInDays: 90
    enablePurgeProtection: true
    publicNetworkAccess: 'Enabled' // the Container Apps environment has no virtual network here
  }
}

// A PUT of vaults/keys is the resource provider's "create if not exist": it creates the first version of a key that
// does not exist and otherwise returns the existing key without writing (Keys - Create If Not Exist: "This API does
// not create subsequent versions, and does not update existing keys"). So a second `azd up` keeps the key and its
// version; a change to kty, keySize or keyOps here does not reach an existing key. A new version comes only from a
// rotation (`az keyvault key rotate --vault-name VAULT --name webhook-secrets`).
resource key 'Microsoft.KeyVault/vaults/keys@2023-07-01' = {
  parent: vault
  name: keyName
  properties: {
    kty: 'RSA'
    keySize: 3072
    keyOps: [ 'wrapKey', 'unwrapKey' ] // a KEK only: it never signs or encrypts data directly
  }
}

output name string = vault.name
output keyName string = key.name
// Versionless (https://VAULT.vault.azure.net/keys/webhook-secrets): new secrets are wrapped with the current version.
output keyUri string = key.properties.keyUri

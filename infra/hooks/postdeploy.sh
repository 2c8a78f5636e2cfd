#!/bin/sh
# After `azd deploy`: deploy infra/events.bicep, the storage account's Event Grid subscriptions to the Functions host's
# blob extension webhook (uploads/ to ImageUploaded, archives/ to ArchiveUploaded), with their retry policy and
# dead-letter container. Event Grid validates an endpoint when a subscription is created, so this needs the deployed
# app; the webhook's code is the host's blobs_extension key, a secret of the container app. Runs again safely: the
# deployment updates the two subscriptions in place (same names, same key: the key is a parameter azd keeps).
set -eu
: "${AZURE_RESOURCE_GROUP:?run through azd}" "${AZURE_EVENTGRID_SYSTEM_TOPIC:?}" "${AZURE_STORAGE_ACCOUNT:?}" \
  "${FUNCTION_APP_NAME:?}" "${FUNCTION_APP_URL:?}"
here=$(cd "$(dirname "$0")" && pwd)

# The key goes in a parameters file readable only by this user (never on a command line, where ps shows it).
params=$(mktemp)
trap 'rm -f "$params"' EXIT
chmod 600 "$params"
key=$(az containerapp secret show -g "$AZURE_RESOURCE_GROUP" -n "$FUNCTION_APP_NAME" --secret-name blobs-extension-key --query value -o tsv)
cat >"$params" <<EOF
{
  "\$schema": "https://schema.management.azure.com/schemas/2019-04-01/deploymentParameters.json#",
  "contentVersion": "1.0.0.0",
  "parameters": {
    "systemTopicName": { "value": "$AZURE_EVENTGRID_SYSTEM_TOPIC" },
    "storageName": { "value": "$AZURE_STORAGE_ACCOUNT" },
    "deadLetterContainer": { "value": "${AZURE_DEADLETTER_CONTAINER:-deadletters}" },
    "functionAppUrl": { "value": "$FUNCTION_APP_URL" },
    "blobsExtensionKey": { "value": "$key" }
  }
}
EOF
echo "postdeploy: Event Grid BlobCreated in uploads/ -> ImageUploaded, archives/ -> ArchiveUploaded (retries, dead letters)"
az deployment group create -g "$AZURE_RESOURCE_GROUP" -n leuko-events --template-file "$here/../events.bicep" \
  --parameters "@$params" --only-show-errors -o none
echo "postdeploy: done. Upload images to the uploads container of $AZURE_STORAGE_ACCOUNT; the API is $FUNCTION_APP_URL/api"
echo "postdeploy: events Event Grid could not deliver land in ${AZURE_DEADLETTER_CONTAINER:-deadletters}/; replay them with infra/hooks/replay-deadletters.sh"

#!/bin/sh
# After `azd deploy`: subscribe the storage account's Event Grid system topic to the Functions host's blob extension
# webhook, for uploads/ (ImageUploaded) and archives/ (ArchiveUploaded). Event Grid validates an endpoint when a
# subscription is created, so this needs the deployed app; its code is the host's blobs_extension key, a secret of
# the container app. Runs again safely: `create` replaces a subscription of the same name.
set -eu
: "${AZURE_RESOURCE_GROUP:?run through azd}" "${AZURE_EVENTGRID_SYSTEM_TOPIC:?}" "${FUNCTION_APP_NAME:?}" "${FUNCTION_APP_URL:?}"
key=$(az containerapp secret show -g "$AZURE_RESOURCE_GROUP" -n "$FUNCTION_APP_NAME" --secret-name blobs-extension-key --query value -o tsv)
for pair in uploads:ImageUploaded archives:ArchiveUploaded; do
  container=${pair%%:*}
  function=${pair#*:}
  echo "postdeploy: Event Grid BlobCreated in $container/ -> $function"
  az eventgrid system-topic event-subscription create \
    -g "$AZURE_RESOURCE_GROUP" --system-topic-name "$AZURE_EVENTGRID_SYSTEM_TOPIC" -n "$container-blob-created" \
    --endpoint-type webhook \
    --endpoint "$FUNCTION_APP_URL/runtime/webhooks/blobs?functionName=Host.Functions.$function&code=$key" \
    --included-event-types Microsoft.Storage.BlobCreated \
    --subject-begins-with "/blobServices/default/containers/$container/" \
    --max-delivery-attempts 30 --event-ttl 1440 >/dev/null
done
echo "postdeploy: done. Upload images to the uploads container of ${AZURE_STORAGE_ACCOUNT:-the storage account}; the API is $FUNCTION_APP_URL/api"

#!/bin/sh
# Replays the upload events Event Grid dead-lettered (infra/events.bicep): each event is posted again, exactly as Event
# Grid delivers it (header aeg-event-type: Notification, a JSON array of one event), to the Functions host's blob
# extension webhook of the function it was meant for (uploads/ to ImageUploaded, archives/ to ArchiveUploaded). The
# pipeline is idempotent (a version already final returns at once), so replaying an event twice changes nothing.
#
#   infra/hooks/replay-deadletters.sh                 in an azd environment (eval "$(azd env get-values)"): downloads
#                                                     the dead-letter container with your Entra sign-in, replays, and
#                                                     deletes each blob whose events were all accepted (--keep: don't)
#   infra/hooks/replay-deadletters.sh --from DIR --endpoint URL --code KEY
#                                                     replays dead-letter files already on disk (any *.json under DIR)
#                                                     to the app at URL; nothing is deleted
#
# Needs sh, curl and jq; the Azure mode also az, signed in with Storage Blob Data Contributor on the dead-letter
# container (or the account) and read access to the container app's secrets. Exit status 1 when any event failed.
set -eu

from='' endpoint='' code="${LEUKO_BLOBS_EXTENSION_KEY:-}" keep=false
while [ $# -gt 0 ]; do
  case "$1" in
    --from) from=$2; shift 2 ;;
    --endpoint) endpoint=$2; shift 2 ;;
    --code) code=$2; shift 2 ;;
    --keep) keep=true; shift ;;
    -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
    *) echo "replay: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
for tool in curl jq; do
  command -v "$tool" >/dev/null 2>&1 || { echo "replay: $tool is required" >&2; exit 2; }
done

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
chmod 700 "$work"

azure=false
if [ -z "$from" ]; then
  azure=true
  : "${AZURE_STORAGE_ACCOUNT:?run in an azd environment (eval \"\$(azd env get-values)\") or give --from DIR}"
  : "${AZURE_RESOURCE_GROUP:?}" "${FUNCTION_APP_NAME:?}" "${FUNCTION_APP_URL:?}"
  container=${AZURE_DEADLETTER_CONTAINER:-deadletters}
  endpoint=${endpoint:-$FUNCTION_APP_URL}
  [ -n "$code" ] || code=$(az containerapp secret show -g "$AZURE_RESOURCE_GROUP" -n "$FUNCTION_APP_NAME" \
    --secret-name blobs-extension-key --query value -o tsv)
  from="$work/blobs"
  mkdir -p "$from"
  az storage blob download-batch --auth-mode login --account-name "$AZURE_STORAGE_ACCOUNT" -s "$container" \
    -d "$from" --pattern '*.json' --only-show-errors -o none
fi
[ -n "$endpoint" ] && [ -n "$code" ] || { echo "replay: --endpoint and --code (or LEUKO_BLOBS_EXTENSION_KEY) are needed with --from" >&2; exit 2; }
[ -d "$from" ] || { echo "replay: $from is not a folder" >&2; exit 2; }
endpoint=${endpoint%/}
encoded_code=$(printf '%s' "$code" | jq -sRr @uri)

replayed=0 failed=0 skipped=0
find "$from" -type f -name '*.json' | sort >"$work/files"
while IFS= read -r file; do
  file_ok=true
  # A dead-letter blob is a JSON array of events, each with Event Grid's delivery fields added.
  if ! jq -c 'if type == "array" then .[] else . end' "$file" >"$work/events" 2>/dev/null; then
    echo "replay: $file is not JSON, left as is" >&2; failed=$((failed + 1)); continue
  fi
  while IFS= read -r event; do
    subject=$(printf '%s' "$event" | jq -r '.subject // ""')
    case "$subject" in
      /blobServices/default/containers/uploads/*) function=ImageUploaded ;;
      /blobServices/default/containers/archives/*) function=ArchiveUploaded ;;
      *) echo "replay: skipped ${subject:-an event without a subject} (not an upload or archive)" >&2
         skipped=$((skipped + 1)); file_ok=false; continue ;;
    esac
    printf '%s' "$event" | jq -c '[del(.deadLetterReason, .deliveryAttempts, .lastDeliveryOutcome, .lastHttpStatusCode,
      .publishTime, .lastDeliveryAttemptTime)]' >"$work/body"
    # The URL holds the key: it goes to curl on stdin, not on the command line.
    status=$(printf 'url = "%s/runtime/webhooks/blobs?functionName=Host.Functions.%s&code=%s"\n' \
        "$endpoint" "$function" "$encoded_code" |
      curl -K - -sS -o /dev/null -w '%{http_code}' --max-time 60 -X POST \
        -H 'Content-Type: application/json' -H 'aeg-event-type: Notification' --data-binary "@$work/body") || status=000
    case "$status" in
      2??) replayed=$((replayed + 1)); echo "replay: $subject -> $function ($status)" ;;
      *) failed=$((failed + 1)); file_ok=false; echo "replay: $subject -> $function failed ($status)" >&2 ;;
    esac
  done <"$work/events"
  if $azure && $file_ok && ! $keep; then
    az storage blob delete --auth-mode login --account-name "$AZURE_STORAGE_ACCOUNT" -c "$container" \
      -n "${file#"$from"/}" --only-show-errors -o none
  fi
done <"$work/files"

echo "replay: $replayed replayed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]

#!/bin/sh
# Pins every base image of the function app's Dockerfile to the digest its tag points to now:
#
#   FROM mcr.microsoft.com/dotnet/sdk:10.0 AS build
#   FROM mcr.microsoft.com/dotnet/sdk:10.0@sha256:<64 hex> AS build        after infra/pin-images.sh
#
# A line already pinned is re-pinned to the tag's current digest, so this is also how to update: run it, review the
# diff (a changed digest is a new base image: security fixes, and possibly a new patch of .NET or the Functions
# host), build, commit. The digest is the registry's Docker-Content-Digest of the tag's manifest list (OCI index),
# the one `docker pull IMAGE:TAG` resolves for every platform; it is read anonymously with the registry API v2 (a
# HEAD of /v2/REPOSITORY/manifests/TAG), as Microsoft's registry serves public images without a token. The same
# digest, with Docker: docker buildx imagetools inspect IMAGE:TAG --format '{{json .Manifest.Digest}}'
#
#   infra/pin-images.sh [--dockerfile PATH]        default functions/Leuko.Functions/Dockerfile
#
# LEUKO_REGISTRY_BASE (tests only) replaces https://REGISTRY-HOST, e.g. http://127.0.0.1:5000. Needs sh, curl, sed.
set -eu
cd "$(dirname "$0")/.."

dockerfile=functions/Leuko.Functions/Dockerfile
while [ $# -gt 0 ]; do
  case "$1" in
    --dockerfile) dockerfile=$2; shift 2 ;;
    -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
    *) echo "pin-images: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
[ -f "$dockerfile" ] || { echo "pin-images: no $dockerfile" >&2; exit 2; }

accept='application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json'
work=$(mktemp)
trap 'rm -f "$work" "$work.new"' EXIT
cp "$dockerfile" "$work"

# Each FROM image: REGISTRY/REPOSITORY:TAG, with or without @sha256:..., stage aliases (FROM x AS y) kept.
grep -E '^FROM ' "$dockerfile" | awk '{ print $2 }' | grep -v -E '^\$|^scratch$' | sort -u | while IFS= read -r image; do
  reference=${image%%@*}
  registry=${reference%%/*}
  path=${reference#*/}
  repository=${path%:*}
  tag=${path##*:}
  [ "$tag" != "$path" ] || { echo "pin-images: $image has no tag; give it one (the tag is what gets pinned)" >&2; exit 1; }
  base=${LEUKO_REGISTRY_BASE:-https://$registry}
  headers=$(curl -sS -I --max-time 30 -H "Accept: $accept" "$base/v2/$repository/manifests/$tag") ||
    { echo "pin-images: cannot reach $registry for $reference" >&2; exit 1; }
  status=$(printf '%s\n' "$headers" | sed -n '1s/^HTTP\/[0-9.]* \([0-9]*\).*/\1/p')
  digest=$(printf '%s\n' "$headers" | tr -d '\r' | sed -n 's/^[Dd]ocker-[Cc]ontent-[Dd]igest: *\(sha256:[0-9a-f]\{64\}\)$/\1/p' | head -n 1)
  [ "$status" = 200 ] && [ -n "$digest" ] ||
    { echo "pin-images: $reference: HTTP $status, no digest (try: docker buildx imagetools inspect $reference)" >&2; exit 1; }
  echo "pin-images: $reference@$digest"
  # Replace the image on its FROM lines only (the name's dots and slashes escaped for sed).
  pattern=$(printf '%s' "$image" | sed 's/[].[\/*^$]/\\&/g')
  sed "s/^FROM $pattern\([[:space:]]\|\$\)/FROM $(printf '%s' "$reference" | sed 's/[\/&]/\\&/g')@$digest\1/" "$work" >"$work.new"
  mv "$work.new" "$work"
done

if cmp -s "$work" "$dockerfile"; then
  echo "pin-images: $dockerfile already pinned to the current digests"
else
  cat "$work" >"$dockerfile"
  echo "pin-images: $dockerfile updated; review with git diff and commit"
fi

"""The OCI distribution client: auth, manifests, blobs, uploads."""

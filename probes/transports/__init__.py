"""How probes reach a node's host (SSH), its debug pod (exec API) and the cluster (Kubernetes API)."""

"""The lab: a simulated Kubernetes cluster whose node networking is real Linux networking.

Network namespaces for a home router, a control plane, an ethernet worker and a WiFi worker
(plus more workers on demand), Calico-style debug pods, kube-proxy-style DNAT, sshd, kubelet and
DNS stand-ins on the nodes (each node with its own PID namespace and init: lab/nodeinit.py), and a
Kubernetes API stand-in that also runs host pods inside the nodes. Driven by `netcheck lab ...` and
by the test suite's fixtures. Needs root. Never touches the host network namespace.
"""

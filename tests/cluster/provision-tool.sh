#!/usr/bin/env bash
# Give a Toolforge tool its place in the test cluster, as the real cluster's maintain-kubeusers
# would (minus certificates: the tests mint those themselves from $TJF_KUBE_CA / _CA_KEY).
#
#   provision-tool.sh RUN_DIR TOOL
#
# Applies, with the admin kubeconfig (idempotent, kubectl apply):
#   Namespace   tool-TOOL        label toolforge.org/tool=TOOL
#   ClusterRole toolforge-tool   shared by all tools
#   RoleBinding tool-TOOL/toolforge-tool  -> ClusterRole toolforge-tool for User TOOL
#   LimitRange  tool-TOOL/tool-limits     container defaults and maximum (Toolforge's limits;
#               requests of 20m/64Mi instead of its 150m/256Mi, so that the one 2-core local
#               node schedules the pods of many tests at once)
# No ResourceQuota: tests create the quotas they need.
#
# Environment: KUBECTL (default: kubectl from PATH).
set -euo pipefail

(($# == 2)) || { echo "usage: provision-tool.sh RUN_DIR TOOL" >&2; exit 2; }
run_dir=$1
tool=$2
kubeconfig=$run_dir/admin.kubeconfig
kubectl=${KUBECTL:-kubectl}

[[ -f $kubeconfig ]] || { echo "provision-tool.sh: no $kubeconfig; run start.sh $run_dir first" >&2; exit 1; }
# The namespace name tool-TOOL must be a DNS label (at most 63 characters).
if [[ ! $tool =~ ^[a-z0-9]([-a-z0-9]*[a-z0-9])?$ || ${#tool} -gt 58 ]]; then
  echo "provision-tool.sh: '$tool' is not a valid tool name (lowercase letters, digits, '-')" >&2
  exit 2
fi
ns=tool-$tool

"$kubectl" --kubeconfig "$kubeconfig" apply -f - <<EOF
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: toolforge-tool
  labels:
    app.kubernetes.io/managed-by: tjf-test-cluster
rules:
- apiGroups: ["batch"]
  resources: ["jobs", "cronjobs"]
  verbs: ["get", "list", "watch", "create", "update", "patch", "delete", "deletecollection"]
- apiGroups: [""]
  resources: ["replicationcontrollers", "pods", "pods/log", "events", "configmaps", "services"]
  verbs: ["get", "list", "watch", "create", "update", "patch", "delete", "deletecollection"]
- apiGroups: ["apps"]
  resources: ["deployments", "replicasets"]
  verbs: ["get", "list", "watch", "create", "update", "patch", "delete", "deletecollection"]
- apiGroups: [""]
  resources: ["resourcequotas", "limitranges"]
  verbs: ["get", "list"]
---
apiVersion: v1
kind: Namespace
metadata:
  name: $ns
  labels:
    toolforge.org/tool: "$tool"
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata:
  name: toolforge-tool
  namespace: $ns
subjects:
- kind: User
  name: "$tool"
  apiGroup: rbac.authorization.k8s.io
roleRef:
  kind: ClusterRole
  name: toolforge-tool
  apiGroup: rbac.authorization.k8s.io
---
apiVersion: v1
kind: LimitRange
metadata:
  name: tool-limits
  namespace: $ns
spec:
  limits:
  - type: Container
    default:
      cpu: 500m
      memory: 512Mi
    defaultRequest:
      cpu: 20m
      memory: 64Mi
    max:
      cpu: "1"
      memory: 4Gi
EOF

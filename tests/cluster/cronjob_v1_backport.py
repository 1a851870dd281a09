#!/usr/bin/env python3
"""Make a Kubernetes v1.20 source tree serve CronJob under batch/v1.

Upstream promoted CronJob to batch/v1 only in 1.21, but production clusters (and the
code under test) use batch/v1. Everything the server needs already exists in v1.20:
the batch/v1beta1 wire types and their defaulting, the internal batch.CronJob type
with its validation, and the cronjob REST storage. This script re-exposes them in
the batch/v1 group version, without changing any behaviour of the existing versions:

  staging/src/k8s.io/api/batch/v1/types_cronjob.go          (new)
      JobTemplateSpec, CronJob, CronJobList, CronJobSpec, ConcurrencyPolicy and
      CronJobStatus, taken from batch/v1beta1/types.go with the same JSON and
      protobuf tags, plus their scheme registration.
  pkg/apis/batch/v1/cronjob.go                               (new)
      SetDefaults_CronJob (same defaults as v1beta1) and the CronJob field
      selectors (metadata.name, metadata.namespace, status.successful).
  pkg/registry/batch/rest/storage_batch.go                   (edited)
      the existing cronjob storage is also served at batch/v1.
  api/api-rules/violation_exceptions.list                    (edited)
      the known list_type_missing exception for CronJobStatus.Active also
      applies to the batch/v1 copy.

Storage in etcd stays batch/v1beta1 (pkg/kubeapiserver pins that for cronjobs in
1.20), so objects written through one version are readable through the other.
Not backported: status.lastSuccessfulTime (new in 1.21). The v1.20 cronjob
controller keeps running the CronJobs, through batch/v1beta1.

Generated code (deepcopy, protobuf, defaulters, conversions, openapi) is NOT written
here: build.sh regenerates it afterwards with the generators vendored in the tree.

Usage: cronjob_v1_backport.py KUBERNETES_SOURCE_DIR
Running it again on an already patched tree changes nothing.
"""

import re
import sys
from pathlib import Path

MARKER = "tjf-cluster: batch/v1 CronJob backport"

LICENSE = """/*
Copyright The Kubernetes Authors.

Licensed under the Apache License, Version 2.0 (the "License");
you may not use this file except in compliance with the License.
You may obtain a copy of the License at

    http://www.apache.org/licenses/LICENSE-2.0

Unless required by applicable law or agreed to in writing, software
distributed under the License is distributed on an "AS IS" BASIS,
WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
See the License for the specific language governing permissions and
limitations under the License.
*/
"""

# The declarations that make up CronJob in batch/v1beta1/types.go, in file order.
CRONJOB_TYPES = ["JobTemplateSpec", "CronJob", "CronJobList", "CronJobSpec",
                 "ConcurrencyPolicy", "CronJobStatus"]


class BackportError(Exception):
    pass


def read(src: Path, rel: str) -> str:
    path = src / rel
    if not path.is_file():
        raise BackportError(f"{rel}: not found (is this a Kubernetes v1.20 tree?)")
    return path.read_text()


def cronjob_api_types(src: Path) -> str:
    """The CronJob declarations of batch/v1beta1, rewritten for package batch/v1."""
    text = read(src, "staging/src/k8s.io/api/batch/v1beta1/types.go")
    start = text.find("// JobTemplateSpec describes")
    if start < 0:
        raise BackportError("batch/v1beta1/types.go: JobTemplateSpec not found")
    block = text[start:].rstrip() + "\n"
    declared = re.findall(r"^type (\w+) ", block, re.M)
    if declared != CRONJOB_TYPES or re.search(r"^func ", block, re.M):
        raise BackportError(f"batch/v1beta1/types.go: unexpected declarations {declared}")
    # prerelease-lifecycle tags describe the beta version's life cycle, not v1's.
    block = "".join(line for line in block.splitlines(keepends=True)
                    if "+k8s:prerelease-lifecycle-gen" not in line)
    # In package batch/v1, JobSpec is local; core/v1 is imported as corev1 below.
    block = block.replace("batchv1.JobSpec", "JobSpec")
    block = re.sub(r"\bv1\.ObjectReference\b", "corev1.ObjectReference", block)
    leftover = re.findall(r"\b(?:batchv1|v1)\.\w+", block)
    if leftover:
        raise BackportError(f"batch/v1beta1/types.go: unhandled references {leftover}")
    return f"""{LICENSE}
// {MARKER}.
// The declarations below are those of k8s.io/api/batch/v1beta1 (Kubernetes v1.20),
// unchanged apart from package-local names. Kubernetes 1.21 has the same in batch/v1.

package v1

import (
\tcorev1 "k8s.io/api/core/v1"
\tmetav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
\t"k8s.io/apimachinery/pkg/runtime"
)

func init() {{
\tlocalSchemeBuilder.Register(addCronJobKnownTypes)
}}

func addCronJobKnownTypes(scheme *runtime.Scheme) error {{
\tscheme.AddKnownTypes(SchemeGroupVersion, &CronJob{{}}, &CronJobList{{}})
\treturn nil
}}

{block}"""


def cronjob_internal_glue(src: Path) -> str:
    """Defaulting and field selectors for batch/v1 CronJob in pkg/apis/batch/v1."""
    text = read(src, "pkg/apis/batch/v1beta1/defaults.go")
    m = re.search(r"^func SetDefaults_CronJob\(obj \*batchv1beta1\.CronJob\) \{\n.*?^\}\n", text, re.M | re.S)
    if not m:
        raise BackportError("pkg/apis/batch/v1beta1/defaults.go: SetDefaults_CronJob not found")
    defaults = m.group(0).replace("batchv1beta1.", "batchv1.")
    return f"""{LICENSE}
// {MARKER}: defaulting and field selectors of batch/v1 CronJob,
// the same as batch/v1beta1 has in Kubernetes v1.20.

package v1

import (
\t"fmt"

\tbatchv1 "k8s.io/api/batch/v1"
\t"k8s.io/apimachinery/pkg/runtime"
)

func init() {{
\tlocalSchemeBuilder.Register(addCronJobFieldSelectors)
}}

{defaults}
func addCronJobFieldSelectors(scheme *runtime.Scheme) error {{
\treturn scheme.AddFieldLabelConversionFunc(SchemeGroupVersion.WithKind("CronJob"),
\t\tfunc(label, value string) (string, string, error) {{
\t\t\tswitch label {{
\t\t\tcase "metadata.name", "metadata.namespace", "status.successful":
\t\t\t\treturn label, value, nil
\t\t\tdefault:
\t\t\t\treturn "", "", fmt.Errorf("field label %q not supported for batchv1.CronJob", label)
\t\t\t}}
\t\t}})
}}
"""


def serve_cronjobs_in_v1(text: str) -> str:
    anchor = '\tstorage["jobs/status"] = jobsStatusStorage\n'
    if text.count(anchor) != 1:
        raise BackportError("storage_batch.go: v1Storage jobs/status anchor not found exactly once")
    if "cronjobstore.NewREST" not in text:
        raise BackportError("storage_batch.go: cronjobstore import not found")
    addition = (f"\t// {MARKER}: the v1.20 cronjob storage, served at batch/v1 too.\n"
                "\tcronJobsStorage, cronJobsStatusStorage, err := cronjobstore.NewREST(restOptionsGetter)\n"
                "\tif err != nil {\n"
                "\t\treturn storage, err\n"
                "\t}\n"
                '\tstorage["cronjobs"] = cronJobsStorage\n'
                '\tstorage["cronjobs/status"] = cronJobsStatusStorage\n')
    return text.replace(anchor, anchor + addition)


def add_api_rule_exception(text: str) -> str:
    line = "API rule violation: list_type_missing,k8s.io/api/batch/v1,CronJobStatus,Active\n"
    before = "API rule violation: list_type_missing,k8s.io/api/batch/v1,JobStatus,Conditions\n"
    if line in text:
        return text
    if before not in text:
        raise BackportError("violation_exceptions.list: batch/v1 JobStatus line not found")
    return text.replace(before, line + before)  # keeps the list sorted


def main(argv):
    if len(argv) != 2:
        print(__doc__.strip().splitlines()[0], file=sys.stderr)
        print("usage: cronjob_v1_backport.py KUBERNETES_SOURCE_DIR", file=sys.stderr)
        return 2
    src = Path(argv[1])
    new_files = {
        "staging/src/k8s.io/api/batch/v1/types_cronjob.go": cronjob_api_types(src),
        "pkg/apis/batch/v1/cronjob.go": cronjob_internal_glue(src),
    }
    edits = {
        "pkg/registry/batch/rest/storage_batch.go": serve_cronjobs_in_v1,
        "api/api-rules/violation_exceptions.list": add_api_rule_exception,
    }
    # Compute everything first, then write, so a failed check leaves the tree untouched.
    writes = {}
    for rel, content in new_files.items():
        path = src / rel
        if not path.exists() or path.read_text() != content:
            writes[rel] = content
    for rel, edit in edits.items():
        old = read(src, rel)
        if MARKER in old:
            continue
        new = edit(old)
        if new != old:
            writes[rel] = new
    for rel, content in writes.items():
        (src / rel).write_text(content)
        print(f"cronjob_v1_backport: wrote {rel}")
    if not writes:
        print("cronjob_v1_backport: tree already patched")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv))
    except BackportError as err:
        print(f"cronjob_v1_backport: {err}", file=sys.stderr)
        sys.exit(1)

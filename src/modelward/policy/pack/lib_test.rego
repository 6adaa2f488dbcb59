# Fixtures shared by the pack's unit tests (run with `modelward policy test` or `opa test`).
package modelward.lib_test

import data.modelward.lib
import rego.v1

# The default settings, as modelward feeds them.
base := {
	"approved_sha256": [], "approved_origins": [], "allowed_licenses": [], "denied_licenses": [],
	"commercial": false, "allowed_formats": [], "allowed_runtimes": [],
	"allow_network_exposure": false, "block_severity": "high", "allow_cloud_models": false,
	"stop_exposed_runtimes": false,
}

settings(overrides) := object.union(base, overrides)

artifact(overrides) := object.union({
	"path": "/m/model.bin", "size": 1, "sha256": "aa", "format": "safetensors",
	"source": {"kind": "file", "name": null, "repo": null, "revision": null},
	"license": {"id": "apache-2.0", "name": "", "evidence": ""},
	"metadata": {}, "findings": [], "in_use": false,
}, overrides)

inventory(artifacts) := {"schema": "modelward.inventory/v1", "artifacts": artifacts, "runtimes": [], "packages": []}

test_origin_glob if {
	lib.origin_approved(artifact({"source": {"kind": "huggingface", "repo": "acme/llm"}}), settings({"approved_origins": ["acme/*"]}))
	not lib.origin_approved(artifact({"source": {"kind": "huggingface", "repo": "evil/llm"}}), settings({"approved_origins": ["acme/*"]}))
}

test_pickle_format_lookup_matches_the_set if {
	every f in lib.pickle_formats {
		lib.is_pickle_format[f]
	}
	count(lib.is_pickle_format) == count(lib.pickle_formats)
	not lib.is_pickle_format.safetensors
}

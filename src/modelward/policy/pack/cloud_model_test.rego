package modelward.rules.cloud_model_test

import data.modelward.lib_test as t
import data.modelward.rules.cloud_model
import rego.v1

cloud := t.artifact({"metadata": {"ollama": {"cloud": true}}})

test_cloud_model_warns if {
	ds := cloud_model.check(t.inventory([cloud]), t.settings({}))
	count(ds) == 1
	ds[0].action == "warn"
}

test_cloud_models_allowed if {
	count(cloud_model.check(t.inventory([cloud]), t.settings({"allow_cloud_models": true}))) == 0
}

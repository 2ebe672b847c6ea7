#!/usr/bin/env python3
"""Check an AWS Data Pipeline definition file the way the AWS CLI would send it.

Usage: python3 tests/pipeline_check.py DEFINITION.json [--api API.json]

Steps:
  1. load the JSON and convert a deep copy of it (the translator mutates its
     input) with awscli's definition_to_api_objects /
     definition_to_api_parameters / definition_to_parameter_values, exactly as
     `aws datapipeline put-pipeline-definition --pipeline-definition file://...`
     does;
  2. validate the resulting PutPipelineDefinition request against botocore's
     datapipeline service model (ParamValidator: types, required members);
  3. check that every refValue names an existing object id and that ids are
     unique;
  4. with --api, compare the request with API.json, the output of the Rust
     side's `to_api_objects(..).to_api_json()`, so both conversions agree.

Prints one line and exits 0 when all pass, 1 on a failed check, 2 on a usage
or input error. Needs the `awscli` package (which brings botocore); no AWS
credentials or network are used.
"""

import copy
import json
import sys


def fail(message, code=1):
    print(f"FAIL: {message}")
    sys.exit(code)


def translate(definition):
    from awscli.customizations.datapipeline import translator

    work = copy.deepcopy(definition)
    try:
        objects = translator.definition_to_api_objects(work)
        parameters = translator.definition_to_api_parameters(work)
        values = translator.definition_to_parameter_values(work)
    except translator.PipelineDefinitionError as e:
        fail(f"awscli translator rejected the definition: {e.msg}")
    params = {"pipelineId": "df-TEST", "pipelineObjects": objects}
    if parameters is not None:
        params["parameterObjects"] = parameters
    if values is not None:
        params["parameterValues"] = values
    return params


def botocore_errors(params):
    import botocore.session
    import botocore.validate

    client = botocore.session.get_session().create_client(
        "datapipeline", region_name="us-east-1"
    )
    shape = client.meta.service_model.operation_model(
        "PutPipelineDefinition"
    ).input_shape
    report = botocore.validate.ParamValidator().validate(params, shape)
    return report.generate_report() if report.has_errors() else None


def ref_errors(objects):
    errors = []
    seen = set()
    for obj in objects:
        if obj["id"] in seen:
            errors.append(f'duplicate object id "{obj["id"]}"')
        seen.add(obj["id"])
    for obj in objects:
        for field in obj.get("fields", []):
            if isinstance(field, dict) and "refValue" in field:
                target = field["refValue"]
                if not isinstance(target, str) or target not in seen:
                    errors.append(
                        f'object "{obj["id"]}" field "{field.get("key")}" '
                        f"refers to {target!r}, which is not an object id"
                    )
    return errors


def compare_api(params, api):
    """Differences between awscli's conversion and the Rust one (values compared as multisets)."""
    diffs = []
    if api.get("pipelineObjects") != params["pipelineObjects"]:
        mine = {o["id"]: o for o in params["pipelineObjects"]}
        theirs = {o["id"]: o for o in api.get("pipelineObjects", [])}
        for oid in sorted(set(mine) | set(theirs)):
            if mine.get(oid) != theirs.get(oid):
                diffs.append(f'pipelineObjects differ for "{oid}"')
        if not diffs:
            diffs.append("pipelineObjects differ in order")
    if api.get("parameterObjects", []) != params.get("parameterObjects", []):
        diffs.append("parameterObjects differ")

    def key(v):
        return (v["id"], v["stringValue"])

    if sorted(api.get("parameterValues", []), key=key) != sorted(
        params.get("parameterValues", []), key=key
    ):
        diffs.append("parameterValues differ")
    return diffs


def main(argv):
    args = argv[1:]
    api_path = None
    if "--api" in args:
        i = args.index("--api")
        if i + 1 >= len(args):
            fail("--api needs a file name", 2)
        api_path = args[i + 1]
        del args[i : i + 2]
    if len(args) != 1:
        fail("usage: pipeline_check.py DEFINITION.json [--api API.json]", 2)
    path = args[0]
    try:
        with open(path, encoding="utf-8") as f:
            definition = json.load(f)
    except (OSError, ValueError) as e:
        fail(f"cannot read {path}: {e}", 2)
    if not isinstance(definition, dict):
        fail(f"{path}: top level is not a JSON object")

    params = translate(definition)
    report = botocore_errors(params)
    if report:
        fail(f"{path}: botocore rejects PutPipelineDefinition: {' | '.join(report.splitlines())}")
    errors = ref_errors(params["pipelineObjects"])
    if errors:
        fail(f"{path}: {'; '.join(errors)}")

    compared = ""
    if api_path is not None:
        try:
            with open(api_path, encoding="utf-8") as f:
                api = json.load(f)
        except (OSError, ValueError) as e:
            fail(f"cannot read {api_path}: {e}", 2)
        diffs = compare_api(params, api)
        if diffs:
            fail(f"{api_path} does not match awscli's conversion: {'; '.join(diffs)}")
        compared = f", matches {api_path}"

    n_fields = sum(len(o["fields"]) for o in params["pipelineObjects"])
    print(
        f"OK: {path}: {len(params['pipelineObjects'])} objects, {n_fields} fields, "
        f"{len(params.get('parameterObjects') or [])} parameters, "
        f"{len(params.get('parameterValues') or [])} values; "
        f"valid PutPipelineDefinition, all refs resolve{compared}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

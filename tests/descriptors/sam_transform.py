"""template.yaml as CloudFormation: the SAM transform, run offline (what `sam deploy` sends).

cfn-lint checks a SAM template's own schema but not what it becomes; linting the transformed
template also checks runtimes, references and conditions of the generated resources. The code
locations are placeholders, as `sam package` would fill them.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from cfnlint.decode import decode
from samtranslator.translator.transform import transform

PACKAGED_CODE = "s3://packaged-code/streamfn.zip"
PACKAGED_IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/streamfn:infer"


class _NoManagedPolicies:
    """The template names no managed policy: nothing to look up in IAM."""

    @staticmethod
    def load() -> dict[str, str]:
        return {}


def transformed(path: Path) -> dict[str, Any]:
    """The CloudFormation template that SAM makes of `path`."""
    template, problems = decode(str(path))
    if problems:
        raise ValueError(f"{path} does not parse: {problems}")
    for resource in template["Resources"].values():
        if resource["Type"] == "AWS::Serverless::Function":
            properties = resource["Properties"]
            if properties.get("PackageType") == "Image":
                properties["ImageUri"] = PACKAGED_IMAGE
            else:
                properties["CodeUri"] = PACKAGED_CODE
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")  # the transform needs a region
    return transform(template, {}, _NoManagedPolicies())

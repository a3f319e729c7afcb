"""What a stack of a (transformed) template holds for given parameter values, worked out offline.

CloudFormation evaluates conditions at deploy time; so does this, for the functions the template
uses: resources and outputs whose condition is false are dropped; `Fn::If`, `Fn::Equals`,
`Fn::Not`, `Fn::And`, `Fn::Or`, `Fn::FindInMap`, `Fn::Join` and `Fn::Select` are worked out where
their arguments are known; a `Ref` to a parameter, or its `${Name}` in `Fn::Sub`, becomes its
value (a string, as CloudFormation passes it); `AWS::NoValue` disappears. Anything else (a `Ref`
to a resource, `Fn::GetAtt`, a pseudo parameter) is left as written, for tests to compare with.
"""

from __future__ import annotations

import re
from typing import Any

_NO_VALUE = object()
_PLACEHOLDER = re.compile(r"\$\{([^}!]+)\}")


class _Stack:
    def __init__(self, template: dict[str, Any], values: dict[str, str]) -> None:
        declared = template.get("Parameters", {})
        unknown = set(values) - set(declared)
        if unknown:
            raise KeyError(f"the template has no parameter {sorted(unknown)}")
        self.template = template
        self.parameters: dict[str, Any] = {}
        for name, parameter in declared.items():
            value = str(values.get(name, parameter.get("Default", "")))
            if parameter["Type"] == "CommaDelimitedList":
                self.parameters[name] = value.split(",")
            else:
                self.parameters[name] = value
        self.conditions: dict[str, bool] = {}

    def condition(self, name: str) -> bool:
        if name not in self.conditions:
            self.conditions[name] = bool(self.resolve(self.template["Conditions"][name]))
        return self.conditions[name]

    def resolve(self, node: Any) -> Any:
        if isinstance(node, list):
            return [v for v in (self.resolve(item) for item in node) if v is not _NO_VALUE]
        if not isinstance(node, dict):
            return node
        if len(node) == 1:
            ((key, argument),) = node.items()
            done, value = self.function(key, argument)
            if done:
                return value
        resolved = {key: self.resolve(value) for key, value in node.items()}
        return {key: value for key, value in resolved.items() if value is not _NO_VALUE}

    def function(self, key: str, argument: Any) -> tuple[bool, Any]:
        """(True, its value) when `{key: argument}` is a function this can work out."""
        if key == "Ref" and argument == "AWS::NoValue":
            return True, _NO_VALUE
        if key == "Ref" and argument in self.parameters:
            return True, self.parameters[argument]
        if key == "Condition" and isinstance(argument, str):
            return True, self.condition(argument)
        if key == "Fn::If":
            name, if_true, if_false = argument
            return True, self.resolve(if_true if self.condition(name) else if_false)
        if key == "Fn::Equals":
            left, right = self.resolve(argument)
            return True, str(left) == str(right)
        if key == "Fn::Not":
            return True, not self.resolve(argument)[0]
        if key == "Fn::And":
            return True, all(self.resolve(argument))
        if key == "Fn::Or":
            return True, any(self.resolve(argument))
        if key == "Fn::Sub" and isinstance(argument, str):
            text = _PLACEHOLDER.sub(lambda m: self._substitute(m.group(0), m.group(1)), argument)
            return True, text if not _PLACEHOLDER.search(text) else {"Fn::Sub": text}
        if key in ("Fn::FindInMap", "Fn::Join", "Fn::Select"):
            first, second, *rest = self.resolve(argument)
            known = all(isinstance(part, str | list) for part in (first, second, *rest))
            if key == "Fn::FindInMap" and known:
                return True, self.template["Mappings"][first][second][rest[0]]
            if key == "Fn::Join" and known and all(isinstance(p, str) for p in second):
                return True, first.join(second)
            if key == "Fn::Select" and isinstance(first, str) and isinstance(second, list):
                return True, second[int(first)]
        return False, None

    def _substitute(self, placeholder: str, name: str) -> str:
        value = self.parameters.get(name)
        return value if isinstance(value, str) else placeholder

    def created(self, section: str) -> dict[str, Any]:
        return {
            name: self.resolve({k: v for k, v in entry.items() if k != "Condition"})
            for name, entry in self.template.get(section, {}).items()
            if "Condition" not in entry or self.condition(entry["Condition"])
        }


def deployed(template: dict[str, Any], **values: str) -> dict[str, Any]:
    """{"Resources": …, "Outputs": …} a stack of `template` holds with these parameter values."""
    stack = _Stack(template, values)
    return {"Resources": stack.created("Resources"), "Outputs": stack.created("Outputs")}

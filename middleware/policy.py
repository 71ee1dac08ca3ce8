"""The LLM policy registry: which model and limits a corridor task may use.

A malformed policy file must stop the app at start-up with the file and the field named;
finding out at 3 a.m. through a wall of ``policy_disabled`` outcomes is worse.

Where it comes from: ``LLM_POLICY_PATH`` when set, else the registry shipped in the package
(``llm_policy/llm-policy.yaml``, located with ``importlib.resources``), so an installed
``partial-trust serve`` works from any directory. In a checkout that packaged file is the
repository's own ``llm_policy/llm-policy.yaml``: there is one copy, never a stale twin.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Annotated

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from partial_trust.llm_policy import POLICY_FILE
from partial_trust.middleware.candidate_schema import ResponseFormat

#: The shipped registry as a file path (a wheel installs package data as plain files).
DEFAULT_POLICY_PATH = Path(str(resources.files("partial_trust.llm_policy").joinpath(POLICY_FILE)))


class _Strict(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)


class Profile(_Strict):
    model: Annotated[str, Field(min_length=1)]
    temperature: Annotated[float, Field(ge=0.0, le=2.0)]
    max_tokens: Annotated[int, Field(ge=1, le=32_000)]
    confidence_threshold: Annotated[float, Field(ge=0.0, le=1.0)]
    timeout_cap_ms: Annotated[int, Field(ge=1, le=60_000)]
    #: How the request asks for the candidate's shape (``middleware.candidate_schema``):
    #: ``json_schema`` for OpenAI, vLLM, llama.cpp's llama-server, Ollama;
    #: ``json_object_schema`` for llama-cpp-python's server; ``json_object`` for any other.
    response_format: ResponseFormat = "json_schema"
    #: Worked examples before the command (``middleware.candidate_examples``): small models.
    few_shot: bool = False


class Task(_Strict):
    default_profile: str
    profiles: dict[str, Profile]

    @model_validator(mode="after")
    def _default_exists(self) -> Task:
        if self.default_profile not in self.profiles:
            raise ValueError(f"default_profile {self.default_profile!r} is not among profiles")
        return self


class PolicyFile(_Strict):
    version: int
    enabled: bool
    tasks: dict[str, Task]


class PolicyError(ValueError):
    """The policy file is missing or malformed; the message names the file and the field."""


@dataclass(frozen=True, slots=True)
class ResolvedProfile:
    profile_id: str
    profile: Profile


class PolicyRegistry:
    """The parsed registry. ``resolve`` is the corridor's policy gate."""

    def __init__(self, policy: PolicyFile, source: str = "<memory>") -> None:
        self.policy = policy
        self.source = source
        #: ``resolve``'s answers: asked on every request the corridor sees, about a file that
        #: does not change while it is loaded (a new file is a new registry).
        self._resolved: dict[tuple[str, str | None], ResolvedProfile | None] = {}

    @classmethod
    def load(cls, path: str | Path = DEFAULT_POLICY_PATH) -> PolicyRegistry:
        path = Path(path)
        try:
            raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise PolicyError(f"{path}: cannot read the LLM policy file ({exc.strerror})") from exc
        except yaml.YAMLError as exc:
            raise PolicyError(f"{path}: not valid YAML: {exc}") from exc
        try:
            return cls(PolicyFile.model_validate(raw), str(path))
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "<top level>"
            raise PolicyError(f"{path}: field {where}: {first['msg']}") from exc

    @property
    def enabled(self) -> bool:
        return self.policy.enabled

    def resolve(self, task: str, profile_id: str | None) -> ResolvedProfile | None:
        """The profile to use, or ``None`` when the task or the requested profile is unknown."""
        key = (task, profile_id)
        try:
            return self._resolved[key]
        except KeyError:
            if len(self._resolved) >= 64:  # profile ids come from flags: bound it anyway
                self._resolved.clear()
            resolved = self._resolved[key] = self._resolve(task, profile_id)
            return resolved

    def _resolve(self, task: str, profile_id: str | None) -> ResolvedProfile | None:
        entry = self.policy.tasks.get(task)
        if entry is None:
            return None
        chosen = profile_id or entry.default_profile
        profile = entry.profiles.get(chosen)
        return None if profile is None else ResolvedProfile(chosen, profile)

"""A frozen dataclass registered as a JAX pytree (all fields are data), like flax.struct."""
from __future__ import annotations

import dataclasses

import jax


def pytree_dataclass(cls):
    cls = dataclasses.dataclass(frozen=True)(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    jax.tree_util.register_dataclass(cls, data_fields=names, meta_fields=[])
    return cls


def replace(obj, **kw):
    return dataclasses.replace(obj, **kw)

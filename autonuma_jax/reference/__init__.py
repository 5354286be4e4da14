"""The slow, obvious NumPy reference model (an oracle for ``autonuma_jax.tick.step``).

``ReferenceModel`` advances one configuration tick by tick with plain Python loops over tasks,
CPUs, fault events, page units and queue entries, written to be read against the spec
(``shared/spec/autonuma24.md``). ``tests/test_lockstep.py`` steps it beside the JAX engine and
requires identical state after every tick.
"""
from .numpy_model import QUIRKS, ReferenceModel, engine_state_dict

__all__ = ["QUIRKS", "ReferenceModel", "engine_state_dict"]

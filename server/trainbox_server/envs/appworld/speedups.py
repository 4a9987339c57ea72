"""Make AppWorld's import cheaper without changing what it computes.

Importing AppWorld builds ~480 FastAPI routes over ~930 pydantic (v1) models. FastAPI asks
``issubclass(x, BaseModel)`` thousands of times while it does. pydantic v1's ``ModelMetaclass`` derives from
``ABCMeta``, so each such check with a new ``x`` walks the whole tree of model classes (``ABCMeta`` looks for
``x`` among every subclass's virtual subclasses). That walk was 37 % of a worker's start-up CPU (2.5 of 6.8 s,
measured with a counting wrapper around ``ABCMeta.__subclasscheck__``).

No model class has a virtual subclass: nothing calls ``ABCMeta.register`` on one (AppWorld's
``ResponseModel.register`` and ``SQLModel.register`` are its own classmethods that shadow it) and no model
class defines ``__subclasshook__``. Then ``issubclass`` is plain MRO membership, which ``type`` answers
directly. :func:`fast_model_subclass_checks` installs that answer on ``ModelMetaclass`` and keeps it exact:
the first real ``ABCMeta.register`` on a model class switches every check back to ``ABCMeta``'s.
"""

from __future__ import annotations

import abc
from typing import Any

_state = {"virtual": False}


def fast_model_subclass_checks() -> bool:
    """Install the MRO-only subclass check on pydantic v1's model metaclass; False if not applicable."""
    try:
        from pydantic.main import ModelMetaclass
    except ImportError:  # pragma: no cover - AppWorld pins pydantic v1
        return False
    if not issubclass(ModelMetaclass, abc.ABCMeta) or getattr(ModelMetaclass, "_trainbox_fast", False):
        return False

    def __subclasscheck__(cls: Any, subclass: Any) -> bool:
        if _state["virtual"]:
            return abc.ABCMeta.__subclasscheck__(cls, subclass)
        return type.__subclasscheck__(cls, subclass)

    def register(cls: Any, subclass: Any) -> Any:
        _state["virtual"] = True
        return abc.ABCMeta.register(cls, subclass)

    ModelMetaclass.__subclasscheck__ = __subclasscheck__
    ModelMetaclass.register = register
    ModelMetaclass._trainbox_fast = True
    return True

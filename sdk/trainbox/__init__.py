"""trainbox SDK: ``TrainingSandbox`` and ``AsyncTrainingSandbox`` (see issue 3)."""

__version__ = "0.1.0"

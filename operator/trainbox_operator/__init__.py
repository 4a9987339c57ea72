"""trainbox control plane: a Kopf operator reconciling TrainingSandbox and TrainingInstance resources.

Pure decisions live in ``conditions``, ``desired``, ``status`` and ``instances``; ``kube`` and ``sandbox_api``
(the SDK's async client) are the thin I/O layers; ``handlers`` wires them to Kopf.
"""

GROUP = "trainbox.dev"
VERSION = "v1alpha1"

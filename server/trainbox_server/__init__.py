"""trainbox data plane: environment adapters, worker processes, Ray hosts and the HTTP service.

Layers, each importing only the ones below it: ``service`` (the HTTP front) → ``hosts`` (one ``InstanceHost``
per Ray actor, holding instances) → ``runtime`` (worker processes and their warm pools) → ``envs`` (one
adapter per family, run inside a worker). ``errors`` is the one exception tree all of them share.

The life of a step (``POST /v1/instances/{id}/step``; the compatible ``/step`` and OpenEnv's session differ
only in how they read the request and shape the reply):

1. **Front** (``service``). ``fast_routes.FastRoute`` parses the body with the route's pydantic model
   (``models.StepRequest``); ``api_v1.step`` hands it to ``core.SandboxService.step``, which checks what the
   front can check alone (``bounds``: JSON depth, string length, integer size, timeout range) and finds the
   instance's host (``_host``: a cache of instance → host, else a lookup across hosts).
2. **To the host** (``hosts.ray_hosts.HostGroup.call``). The call goes over the host's data channel
   (``hosts.channel``: framed JSON on TCP, authenticated by a per-host secret published through Ray), not
   through Ray's actor calls, which stay for control (ping, families). A dead host becomes ``InstanceLost``.
3. **Host** (``hosts.host.InstanceHost.step``). The instance's record: a repeated ``request_id`` answers the
   first result, a terminated episode is refused, the idle lease is renewed, the transcript records the step
   (``hosts.trajectory``). Every answer is an envelope (``ok`` + result, or the error's ``kind``).
4. **Runtime** (``runtime.runtime.Runtime.step``). Finds the worker process holding the instance
   (``runtime.pool``), sends ``step`` over its pipes (``runtime.framing``, ``runtime.process.request``) with
   the step's deadline; a worker that dies, hangs past it or exceeds its memory is killed and its instances
   answer ``instance_lost``. Families whose scoring must not run beside model code get their reward from a
   separate judge process here.
5. **Worker** (``runtime.worker``, in the family's own interpreter and sandbox). Decodes the frame and calls
   the adapter's ``Instance.step(message)`` (``envs.base``): e.g. ``envs.bfcl`` parses the calls
   (``envs.bfcl.calls``) and runs them on BFCL's own classes; ``envs.appworld`` runs the code in AppWorld.
   The ``StepResult`` (messages, reward, terminated, info) goes back as a frame; an exception becomes a
   typed error of that request, never the worker's end.

Back up the same path: the runtime builds the ``StepResult``, the host wraps it in its envelope, the front
unwraps it (a host error is re-raised as the same ``errors`` class) and the route writes the JSON reply — or
the error object with its HTTP status (``errors.TrainboxError.status``).
"""

__version__ = "0.1.0"

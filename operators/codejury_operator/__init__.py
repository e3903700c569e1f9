"""The CodeJury operator: kopf handlers for the ``SelfTrainingRun`` custom resource.

Every decision is ``codejury.control.reconcile``'s; this package only observes the
cluster (the training Job and its pod, the canary traffic), turns ``reconcile``'s actions
into API calls and writes the status back. Builders of Kubernetes objects are pure
functions (``jobs``, ``inference``, ``conditions``); ``kube`` is the one place that talks
to the API server; ``handlers`` wires them into kopf.
"""

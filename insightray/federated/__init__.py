"""Federated training across hospitals on Flower (``insightray[federated]``).

Layout: ``sites`` (non-IID site splits by source group), ``settings`` (one run's settings,
carried as Flower's run config), ``site`` (a hospital's client: local rounds through the
fracture trainer), ``strategy`` (Flower's FedAvg/FedProx behind update checks, DP wrapper),
``privacy`` (epsilon accounting), ``apps`` (the Flower ServerApp and ClientApp),
``deployment`` (SuperLink/SuperNode processes, ``flwr run``), ``certificates`` (TLS for
tests and pilots), ``simulation`` (everything on one machine) and ``results`` (model card,
metrics, plot). Flower is imported only by the modules that need it.
"""

"""The hardware the model runs on, below every measurement.

``base`` names a device (the reference a backend reports) and the small ``GPU`` Protocol an
opened physical GPU satisfies; one module per vendor implements it (``nvidia``: NVML). A
vendor library is imported only inside its module, when a GPU is first asked for.
"""

"""The tensor-schedule environment: workload -> design space -> measurement -> env.

Nothing is imported here: importing a module of the package (``names``, to check a config's
workloads) must not import TVM, which takes seconds.
"""

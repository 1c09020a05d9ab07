"""The labs' own code, one module per lab, on top of the general package.

* :mod:`odlkit.labs.lab1` -- Lab 1 (personalise a motion classifier on the board): host twin,
  held-out evaluation, the device benchmark, ``python -m odlkit.labs.lab1``
* :mod:`odlkit.labs.boards` -- what every lab does with its board: connect (real or virtual),
  held-out predictions, a device benchmark's JSON
* :mod:`odlkit.labs.lab3` -- Lab 3 (federated averaging over boards): boards as a client pool
  of :func:`odlkit.fl.run_fedavg`, the data split by recording, fault injection

Dependencies point one way: ``labs`` may import every other part of ``odlkit``; nothing
outside ``labs`` imports it.
"""

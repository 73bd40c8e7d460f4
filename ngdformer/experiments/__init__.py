"""The chapters' experiments whose outcomes the chapters assert, one module per chapter.

A chapter calls a function from here (``ngdformer.experiments.ch05.amplification(...)``)
and prints what it returns; the unit tests (``tests/test_experiments_chNN.py``) check
the claim the chapter makes about it on at least five seeds, so that every sentence a
chapter asserts holds whatever its seed. Each function takes an explicit
``np.random.Generator`` or seed and returns plain numbers or arrays.
"""

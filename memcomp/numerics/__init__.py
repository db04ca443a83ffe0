"""Numerical kernels shared by the learners: conjugate gradient (``cg``), the closed-form maths of
a linear softmax head (``head``) and Hessian-vector-product builders (``hvp``)."""

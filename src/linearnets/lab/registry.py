"""The claims of the notes, in order: id → the module that measures it."""

from . import (
               c01_closed_form,
               c02_learning_rate,
               c03_batch_size,
               c04_default_solver,
               c05_newton,
               c06_newton_cost,
               c07_saddle,
               c08_sgd_noise,
               c09_softmax,
               c10_cross_entropy,
               c11_kl,
)

CLAIMS = {m.ID: m for m in (c01_closed_form, c02_learning_rate, c03_batch_size, c04_default_solver,
                            c05_newton, c06_newton_cost, c07_saddle, c08_sgd_noise, c09_softmax,
                            c10_cross_entropy, c11_kl)}

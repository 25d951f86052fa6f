"""The interactive lab (``linearnets lab --serve``): four playgrounds that run the library's own
solvers on real data while a learner turns the chapter's knobs. :mod:`.compute` holds what they
compute (no web code); :mod:`.apps` draws it with Bokeh; :mod:`.server` serves it."""

# path → (title, the claims it shows, what it teaches). Shared with the static report, which links
# each claim to its playground (this module imports nothing heavy).
PLAYGROUNDS = {
    "regression": ("Linear regression on the book's data", ("C1", "C2", "C5"),
                   "the loss surface, the closed-form optimum, and the path of GD, minibatch SGD, momentum "
                   "or Newton as it trains; the stable learning rate 2/λ_max and what happens above it"),
    "softmax": ("Softmax regression on digits", ("C3", "C4", "C9"),
                "learning rate, batch size, loss and solver against loss and accuracy per epoch and per "
                "second; the confusion matrix and the misclassified digits"),
    "saddle": ("The saddle", ("C7",),
               "click a start point: Newton is attracted by the saddle, gradient descent on the axis stays "
               "there, SGD's noise escapes"),
    "losses": ("The losses", ("C10", "C11"),
               "drag the predicted probability of the true class: cross-entropy, MSE on softmax and KL, "
               "their values and gradients; the notes' worked example"),
}

PLAYGROUND_OF = {claim: name for name, (_, claims, _) in PLAYGROUNDS.items() for claim in claims}

"""A challenger whose predict raises (logged as a model from code, so it loads anywhere)."""

import mlflow
from mlflow.pyfunc import PythonModel


class Raising(PythonModel):
    """Loads fine, fails every prediction."""

    # No type hints: MLflow would read them as the model's input schema.
    def predict(self, context, model_input, params=None):
        raise RuntimeError("this challenger cannot predict")


mlflow.models.set_model(Raising())

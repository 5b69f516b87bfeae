"""Runs in the MLflow virtualenv (never imported by the project): fit the benchmark's model
exactly as bench_serve.py does and save it as an MLflow model.

    .venv-bench-mlflow/bin/python bench/mlflow_runner.py OUT_DIR SEED

Same data (make_classification with the same seed and scikit-learn version), same pipeline
(median imputation + standard scaling in a ColumnTransformer, then HistGradientBoosting), so
the served models are the same model; only the serving stack differs.
"""

from __future__ import annotations

import sys


def main() -> None:
    import mlflow.sklearn
    import pandas as pd
    from mlflow.models import infer_signature
    from sklearn.compose import ColumnTransformer
    from sklearn.datasets import make_classification
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    out, seed = sys.argv[1], int(sys.argv[2])
    X, y = make_classification(n_samples=4000, n_features=20, n_informative=8, random_state=seed)
    names = [f"f{i:02d}" for i in range(20)]
    frame = pd.DataFrame(X, columns=names)
    labels = pd.Series(["class_1" if v else "class_0" for v in y])
    numeric = Pipeline(
        [
            ("impute", SimpleImputer(strategy="median", keep_empty_features=True)),
            ("scale", StandardScaler()),
        ]
    )
    model = Pipeline(
        [
            ("preprocess", ColumnTransformer([("numeric", numeric, names)])),
            (
                "model",
                HistGradientBoostingClassifier(
                    max_iter=100, early_stopping=False, random_state=seed
                ),
            ),
        ]
    )
    model.fit(frame.iloc[:3000], labels.iloc[:3000])
    signature = infer_signature(frame.iloc[:5], model.predict(frame.iloc[:5]))
    # MLflow 3 saves scikit-learn models with skops by default and wants the types named
    trusted = ["numpy.dtype", "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor"]
    mlflow.sklearn.save_model(model, out, signature=signature, skops_trusted_types=trusted)
    print(model.predict(frame.iloc[3000:3001])[0])


if __name__ == "__main__":
    main()

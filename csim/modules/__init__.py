"""Lightning modules, one file per `conf/module/*.yaml`: `sentence` (an encoder + a loss: SimCSE, SBERT, the loss
table), `cross_encoder` (a pair scorer fitted to gold scores or labels), `mlm` (masked-language-model pretraining of the
cpu-scale mini encoder); `momentum_queue` and `consert` extend `sentence` with a momentum encoder's
queue of negatives (ESimCSE) and embedding-layer views (ConSERT).
Each takes the built encoder (and loss) and has one `export(directory)`."""

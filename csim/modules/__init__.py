"""Lightning modules, one file per `conf/module/*.yaml`: `sentence` (an encoder + a loss: SimCSE, SBERT, the loss
table), `cross_encoder` (a pair scorer fitted to gold scores or labels), `mlm` (masked-language-model pretraining of the
cpu-scale mini encoder); `momentum_queue`, `consert` and `prompt_bert` extend `sentence` with a momentum
encoder's queue of negatives (ESimCSE), embedding-layer views (ConSERT) and template views (PromptBERT).
Each takes the built encoder (and loss) and has one `export(directory)`."""

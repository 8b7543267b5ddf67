"""Images as VQ token streams: readers (idx.py), named datasets (datasets.py), the VQ codec (codec.py) and its
training (codec_trainer.py), code datasets (tokens.py), the joint text+image vocabulary (vocabulary.py), the
vq: data source (source.py), Fréchet distance in a local classifier's features (frechet.py) and `dlm eval images`
(evaluate.py). Importing dlm.image does not import vector-quantize-pytorch or torchmetrics (dlm[image] extra)."""

"""cnnkit.data: datasets, folders, augmentation. ``AUTOTUNE`` lets tf.data code
(``from tensorflow import data as tf_data`` -> ``from cnnkit import data as tf_data``) keep
``prefetch(tf_data.AUTOTUNE)`` and ``map(..., num_parallel_calls=tf_data.AUTOTUNE)``."""

AUTOTUNE = -1

// Overrides that shrink configs/debug.yaml to a model and data set that train in about a second.
export const TINY = [
  'model.params.unet_config.params.channel_mult=[1]', 'model.params.unet_config.params.attention_resolutions=[]',
  'data.params.batch_size=4', 'data.params.train.params.limit=16', 'data.params.validation.params.limit=8',
  'lightning.trainer.max_steps=6', 'lightning.trainer.val_check_interval=3', 'lightning.trainer.limit_val_batches=1',
  'lightning.modelcheckpoint.params.every_n_train_steps=2', 'lightning.callbacks.image_logger.params.disabled=true',
];

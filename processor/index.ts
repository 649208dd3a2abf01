/** The processor's public surface. */
export { Processor, type ProcessorOptions, type ProcessorEvents } from './processor.js';
export { startProcessorService, PROCESSOR_DEFAULTS, type ProcessorService, type ProcessorServiceOptions } from './service.js';
export { HotSet } from './dedup.js';
export { LocalProcessor, LOCAL_TOPIC, type LocalProcessorOptions, type HandoffBatch } from './local.js';
export { createProcessor } from './create.js';

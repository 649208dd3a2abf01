/** The local Apache Kafka broker: fetched from Maven Central, run on loopback. */
export { LocalKafka, startLocalKafka, type LocalKafkaOptions } from './broker.js';
export { fetchKafka, kafkaHome, KAFKA_VERSION } from './jars.js';

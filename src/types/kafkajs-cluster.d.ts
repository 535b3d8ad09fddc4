declare module 'kafkajs/src/cluster/index.js' {
  /** kafkajs' internal Cluster class (CommonJS, `module.exports = class Cluster`); client.ts patches one method of its prototype */
  const Cluster: {prototype: object}
  export default Cluster
}

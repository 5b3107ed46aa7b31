// CommonJS entry: Node >= 20.19 can require() an ES module synchronously.
module.exports = require('./index.js');

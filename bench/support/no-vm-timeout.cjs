// Bench only, never shipped: loaded with `node --require` into the worker, it runs in the main
// thread and in the SDK's workflow thread, and drops the `timeout` the SDK passes to every
// `vm.Script#runInContext` (its 5 s guard against workflow code that never yields). Node enforces
// such a timeout with a watchdog thread created and joined on every call (nodejs/node#47739), and
// the SDK calls into the workflow context a few times per activation. `npm run bench -- scale
// --try-no-vm-timeout` weighs what the guard costs; `bench replay` requires it for one variant and
// calls `uninstall()` after.
'use strict';
const vm = require('node:vm');

const runInContext = vm.Script.prototype.runInContext;
function runInContextWithoutTimeout(context, options) {
  if (options && typeof options === 'object' && options.timeout !== undefined) {
    const { timeout: _timeout, ...rest } = options;
    return runInContext.call(this, context, rest);
  }
  return runInContext.call(this, context, options);
}
vm.Script.prototype.runInContext = runInContextWithoutTimeout;

module.exports = {
  uninstall() {
    if (vm.Script.prototype.runInContext === runInContextWithoutTimeout) vm.Script.prototype.runInContext = runInContext;
  },
};

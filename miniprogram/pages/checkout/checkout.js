// Checkout page: shows the cart total and pays it. The logic lives in flow.js;
// this file only wires it to Page() and the UI.
const api = require('../../utils/api')
const { checkout, waitForPaid, afterPolling, cartTotal } = require('./flow')

// Stand-in cart so the page works out of the box. A real shop puts its cart in
// storage under 'cart' (or passes it through an EventChannel) before navigating here.
// `price` (fen) is only for display: the server prices the order itself.
const SAMPLE_CART = [{ product_id: 1, name: 'Sample product', price: 1, quantity: 1 }]

Page({
  data: {
    items: SAMPLE_CART,
    totalFee: cartTotal(SAMPLE_CART),
    state: 'idle', // idle | paying | confirming | paid | cancelled | failed
    message: '',
    outTradeNo: '', // set while an unpaid order exists: the next pay() pays it again
  },

  onLoad() {
    const cart = wx.getStorageSync('cart')
    if (Array.isArray(cart) && cart.length) this.setData({ items: cart, totalFee: cartTotal(cart) })
  },

  // Runs one async action at a time: taps while it runs are ignored, so a
  // double tap cannot create two orders.
  async run(action) {
    if (this.busy) return
    this.busy = true
    try {
      await action()
    } catch (err) {
      this.setData({ state: 'failed', message: err.detail || err.message })
    } finally {
      this.busy = false
      wx.hideLoading()
    }
  },

  onState(patch) {
    this.setData(patch)
    if (patch.state === 'confirming') wx.showLoading({ title: 'Confirming…', mask: true })
  },

  // The pay button.
  pay() {
    return this.run(async () => {
      if (this.data.state === 'paid') return
      const { items, totalFee, outTradeNo } = this.data
      const final = await checkout({ api, items, totalFee, outTradeNo, onState: (p) => this.onState(p) })
      if (final.state === 'paid') wx.showToast({ title: 'Paid', icon: 'success' })
    })
  },

  // Shown while state is 'confirming' after polling gave up: ask the server again.
  checkAgain() {
    return this.run(async () => {
      const { outTradeNo } = this.data
      this.onState({ state: 'confirming', message: 'Confirming payment…' })
      this.setData(afterPolling(await waitForPaid(api, outTradeNo), outTradeNo))
    })
  },

  // Shown after a cancel/failure: give the order up (frees reserved stock).
  closeOrder() {
    return this.run(async () => {
      await api.closeOrder(this.data.outTradeNo)
      this.setData({ state: 'idle', message: 'Order closed.', outTradeNo: '' })
    })
  },
})

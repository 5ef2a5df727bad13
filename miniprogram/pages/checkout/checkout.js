// Checkout page: shows the cart, asks for a delivery address when something
// ships, takes an optional remark, and pays. The logic lives in flow.js and
// utils/; this file only wires it to Page() and the UI.
const api = require('../../utils/api')
const cart = require('../../utils/cart')
const { chooseAddress, addressLines } = require('../../utils/address')
const { formatFen } = require('../../utils/money')
const { checkout, waitForPaid, afterPolling, cartTotal, normalizeRemark, REMARK_MAX } = require('./flow')

// Stand-in cart so the page works out of the box. A real shop fills the cart
// from the product pages (utils/cart.js) before navigating here.
// `price` (fen) is only for display: the server prices the order itself.
const SAMPLE_CART = [{ product_id: 1, name: 'Sample product', price: 1, quantity: 1 }]

Page({
  data: {
    items: SAMPLE_CART,
    totalFee: cartTotal(SAMPLE_CART),
    totalText: formatFen(cartTotal(SAMPLE_CART)),
    needsAddress: false, // something in the cart ships (or the server said so)
    address: null, // the API's snake_case address, once chosen
    addressWho: '',
    addressWhere: '',
    remark: '',
    remarkMax: REMARK_MAX,
    state: 'idle', // idle | paying | confirming | paid | cancelled | failed
    message: '',
    outTradeNo: '', // set while an unpaid order exists: the next pay() pays it again
    // Set while the answer to a new order was lost: the next pay() resends the
    // same order with this Idempotency-Key, so it cannot make a second one.
    // Address and remark are locked meanwhile (the retry must be the same order).
    idempotencyKey: '',
  },

  onLoad() {
    const items = cart.read()
    if (items.length) this.setData({ items, needsAddress: cart.needsAddress(items), ...this.total(cartTotal(items)) })
  },

  total: (totalFee) => ({ totalFee, totalText: formatFen(totalFee) }),

  // setData for flow patches: keeps the shown total and address in step.
  show(patch) {
    const extra = {}
    if ('totalFee' in patch) Object.assign(extra, this.total(patch.totalFee))
    if ('address' in patch) {
      const { who, where } = addressLines(patch.address)
      Object.assign(extra, { addressWho: who, addressWhere: where })
    }
    this.setData({ ...patch, ...extra })
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
    this.show(patch)
    if (patch.state === 'confirming') wx.showLoading({ title: 'Confirming…', mask: true })
  },

  onRemarkInput(e) {
    this.setData({ remark: e.detail.value })
  },

  // Opens WeChat's address book; a cancel keeps what was there.
  async pickAddress() {
    const address = await chooseAddress()
    if (address) this.show({ address })
    return address
  },

  // The address row.
  changeAddress() {
    if (this.data.idempotencyKey) return // locked until the lost order is resolved
    return this.run(() => this.pickAddress())
  },

  // The pay button.
  pay() {
    return this.run(async () => {
      if (this.data.state === 'paid') return
      const { items, totalFee, outTradeNo, idempotencyKey, needsAddress } = this.data
      let { address } = this.data
      const { remark, error } = normalizeRemark(this.data.remark)
      if (!outTradeNo) {
        if (error) return this.setData({ state: 'failed', message: error })
        if (needsAddress && !address) {
          address = await this.pickAddress()
          // Cancelled: stay here, no order.
          if (!address) return this.setData({ state: 'idle', message: 'Choose a delivery address to place the order.' })
        }
      }
      const final = await checkout({
        api, items, totalFee, outTradeNo, remark, address, idempotencyKey,
        onState: (p) => this.onState(p),
      })
      this.setData({ idempotencyKey: final.idempotencyKey || '' })
      if (final.state === 'paid') {
        cart.clear() // bought: the order keeps the items
        wx.showToast({ title: 'Paid', icon: 'success' })
      }
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

  openOrders() {
    wx.navigateTo({ url: '/pages/orders/orders' })
  },
})
